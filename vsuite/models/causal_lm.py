"""What every vsuite causal LM shares: a base model at `self.model` with `embed_tokens`, and a
tied `lm_head`. The accessors transformers' generic code (resizing, tying, generation) calls."""

from __future__ import annotations


class CausalLMAccessors:
    """Mixin for `...ForCausalLM` classes built as `self.model` (with `embed_tokens`) + `self.lm_head`."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def get_decoder(self):
        return self.model

    def set_decoder(self, decoder):
        self.model = decoder
