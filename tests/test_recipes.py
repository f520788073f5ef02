"""Recipes: TOML -> typed configs, overrides, errors that name file and key."""

import re
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_vsuite
from vsuite.errors import RecipeError
from vsuite.recipes import apply_overrides, list_recipes, load_recipe, parse_value


def write(tmp_path, text, name="r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_recipe_validates():
    r = run_vsuite("recipes", "validate")
    assert r.code == 0, r.stderr
    assert len(list_recipes()) >= 2
    assert "recipe(s) valid" in r.stderr


def test_precedence_defaults_file_overrides(tmp_path):
    path = write(tmp_path, "[bench]\nheads = 4\ndim = 64\n")
    r = load_recipe(path, "bench-kernels", ["bench.dim=32", "bench.seq=[8, 16]"])
    assert r.bench.heads == 4  # from the file
    assert r.bench.dim == 32  # override beats file
    assert r.bench.seq == [8, 16]
    assert r.bench.batch == 1  # default


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "[bench]\nheds = 4\n")
    with pytest.raises(RecipeError, match=r"r\.toml: \[bench\] heds: unknown key"):
        load_recipe(path, "bench-kernels")


def test_unknown_table(tmp_path):
    path = write(tmp_path, "[model]\nx = 1\n")
    with pytest.raises(RecipeError, match=r"unknown table\(s\) \[model\]"):
        load_recipe(path, "bench-kernels")


def test_wrong_type_is_an_error(tmp_path):
    path = write(tmp_path, '[bench]\nheads = "eight"\n')
    with pytest.raises(RecipeError, match=r"\[bench\] heads: Input should be a valid integer"):
        load_recipe(path, "bench-kernels")
    with pytest.raises(RecipeError, match="dim"):
        load_recipe(None, "bench-kernels", ["bench.dim=1000"])


def test_invalid_toml(tmp_path):
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(write(tmp_path, "[bench\n"), "bench-kernels")


def test_override_syntax():
    assert parse_value("3e-4") == 3e-4 and parse_value("true") is True and parse_value("[1, 2]") == [1, 2]
    assert parse_value("cosine") == "cosine"
    assert apply_overrides({"a": {"b": 1}}, ["a.c.d=2"]) == {"a": {"b": 1, "c": {"d": 2}}}
    with pytest.raises(RecipeError, match="table.key=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(RecipeError, match="table.key=value"):
        apply_overrides({}, ["x=1"])


def test_resolved_recipe_round_trips(tmp_path):
    r = load_recipe(None, "bench-kernels", ["bench.heads=3"])
    path = r.write(tmp_path / "run" / "recipe.toml")
    again = load_recipe(path, "bench-kernels")
    assert again.to_dict() == r.to_dict()
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_validate_reports_bad_file_with_exit_3(tmp_path):
    bad = write(tmp_path, "[bench]\nrepeats = 0\n")
    r = run_vsuite("recipes", "validate", str(bad), "--task", "bench-kernels")
    assert_one_line_error(r, 3)
    assert "repeats" in r.stderr


def test_cat_and_ls():
    r = run_vsuite("recipes", "ls", "--json")
    assert r.code == 0
    import json

    names = {(row["task"], row["name"]) for row in json.loads(r.stdout)}
    assert ("bench-kernels", "cpu-65k") in names
    r = run_vsuite("recipes", "cat", "bench-kernels/cpu-65k", "--resolved", "bench.heads=2")
    assert r.code == 0 and "heads = 2" in r.stdout and "warmup" in r.stdout
    assert_one_line_error(run_vsuite("recipes", "cat", "no-such"), 3)


# ----------------------------------------------------------------------------- where a bad value came from
def test_flags_arrive_typed_and_win_over_file_and_overrides(tmp_path):
    path = write(tmp_path, "[bench]\nheads = 4\ndim = 64\nseq = [8]\n")
    r = load_recipe(path, "bench-kernels", ["bench.heads=5", "bench.dim=32"],
                    flags={"bench.heads": ("--heads", 6), "bench.seq": ("--seq", [16, 32])})
    assert (r.bench.heads, r.bench.dim, r.bench.seq) == (6, 32, [16, 32])  # flag > override > file
    assert r.flags == ["--heads 6", "--seq 16,32"]
    assert "and flags --heads 6 --seq 16,32" in r.to_toml().splitlines()[0]


def test_bad_flag_value_is_a_usage_error_naming_the_flag(tmp_path):
    from vsuite.errors import UsageError

    with pytest.raises(UsageError) as err:
        load_recipe(None, "bench-kernels", flags={"bench.heads": ("--heads", 0)})
    assert str(err.value) == "--heads 0: Input should be greater than or equal to 1"
    assert err.value.exit_code == 2
    path = write(tmp_path, "[bench]\nheads = 0\n")  # the file's own bad value still names the file
    with pytest.raises(RecipeError, match=r"r\.toml: \[bench\] heads: Input should be greater"):
        load_recipe(path, "bench-kernels")
    with pytest.raises(UsageError, match=r"^--seq 8,0: sequence lengths must be >= 1, got \[0\]$"):
        load_recipe(path, "bench-kernels", flags={"bench.heads": ("--heads", 2), "bench.seq": ("--seq", [8, 0])})


def test_override_typo_names_the_override_not_the_file(tmp_path):
    path = write(tmp_path, "[bench]\nheads = 4\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path, "bench-kernels", ["bench.heds=2"])
    assert str(err.value) == "override 'bench.heds=2': [bench] heds: unknown key"
    with pytest.raises(RecipeError, match=r"^override 'bnch.heads=2': unknown table\(s\) \[bnch\]"):
        load_recipe(path, "bench-kernels", ["bnch.heads=2"])
    with pytest.raises(RecipeError, match=r"^override 'bench.dim=1000': \[bench\] dim: Input should be less"):
        load_recipe(path, "bench-kernels", ["bench.dim=999", "bench.dim=1000"])  # the one in effect


def test_errors_from_file_and_override_are_both_named(tmp_path):
    path = write(tmp_path, "[bench]\nheds = 4\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path, "bench-kernels", ["bench.repeats=0"])
    text = str(err.value)
    assert f"{path}: [bench] heds: unknown key" in text
    assert "override 'bench.repeats=0': [bench] repeats: Input should be greater than or equal to 1" in text


def test_whole_table_check_names_the_file_with_the_overrides_that_fed_it():
    # a cross-field check (loc is the whole [train] table) cannot blame one key
    with pytest.raises(RecipeError) as err:
        load_recipe("pretrain/tnl-tiny-cpu", "pretrain", ["train.betas=[0.9]"])
    assert "override 'train.betas=[0.9]'" in str(err.value) and "betas must be two numbers" in str(err.value)


@pytest.mark.parametrize("text, words", [
    ("", "no tables; a bench-kernels recipe has the table(s) [bench]"),
    ("# only a comment\n", "no tables"),
    ("heads = 4\n", "'heads' is outside any table; a bench-kernels recipe has the table(s) [bench]"),
])
def test_an_empty_or_table_less_file_is_not_a_recipe(tmp_path, text, words):
    with pytest.raises(RecipeError, match=re.escape(words)):
        load_recipe(write(tmp_path, text), "bench-kernels")
    r = run_vsuite("recipes", "validate", str(tmp_path / "r.toml"), "--task", "bench-kernels")
    assert_one_line_error(r, 3)
    assert words in r.stderr and "ok" not in r.stderr


def test_empty_finetune_recipe_says_it_needs_a_task_kind(tmp_path):
    with pytest.raises(RecipeError, match=r"no tables; a finetune recipe starts with a \[task\] table \(kind ="):
        load_recipe(write(tmp_path, ""), "finetune")


# ----------------------------------------------------------------------------- warmup longer than the run
def test_warmup_longer_than_the_run_is_clamped_with_one_warning(capsys):
    from vsuite.train.config import TrainConfig

    cfg = TrainConfig(steps=20, warmup_steps=40)
    assert cfg.warmup_steps == 20
    err = capsys.readouterr().err
    assert err.strip() == "Warning: train.warmup_steps (40) exceeds train.steps (20): warming up over all 20 steps"
    assert TrainConfig(steps=20, warmup_steps=20).warmup_steps == 20 and capsys.readouterr().err == ""


def test_short_run_of_the_tiny_recipe_resolves(capsys):
    """The README's quick command: `vsuite pretrain pretrain/tnl-tiny-cpu train.steps=20` (the recipe warms up longer)."""
    r = load_recipe("pretrain/tnl-tiny-cpu", "pretrain", ["train.steps=20"])
    assert r.train.steps == 20 and r.train.warmup_steps <= 20
    shipped = load_recipe("pretrain/tnl-tiny-cpu", "pretrain").train.warmup_steps
    if shipped > 20:
        assert "warming up over all 20 steps" in capsys.readouterr().err


def test_schedule_warmup_ends_with_the_run():
    from vsuite.train.schedule import lr_at

    kw = dict(lr=1.0, total_steps=4, min_lr_ratio=0.1)
    # warmup 10 > 4 steps: the ramp is over the 4 steps, 1/4, 2/4, 3/4, 4/4 (hand-computed)
    assert [lr_at(s, warmup_steps=10, **kw) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert [lr_at(s, warmup_steps=2, **kw) for s in range(2)] == pytest.approx([0.5, 1.0])  # unchanged otherwise


def test_whole_table_check_fed_only_by_flags_is_a_usage_error():
    from vsuite.errors import UsageError

    with pytest.raises(UsageError, match=r"^--betas 0.9: betas must be two numbers"):
        load_recipe(None, "pretrain", flags={"train.betas": ("--betas", [0.9])})
