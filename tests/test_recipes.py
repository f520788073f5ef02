"""Recipes: TOML -> typed configs, overrides, errors that name file and key."""

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
