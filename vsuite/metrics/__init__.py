"""Scorers shared by `vsuite eval` and the trainer's validation, one file per benchmark: pure functions of
predictions and references (plus the typed [eval] config of that benchmark).

    topk.py        top-k accuracy of class probabilities averaged over a video's views (eval classify, finetune)
    lm.py          windowed NLL / perplexity of a causal LM on a token stream (eval lm, pretrain validation)
    vript_hard.py  Vript-Hard HAL / RR / ERO (eval vript-*); results.py: the results.json / samples.jsonl files

Importing this package is light; torch is imported by the functions that need it.
"""
