"""Recipe loading: validation errors name file, line and field; overrides; TRL/PEFT pass-through."""

import re
from pathlib import Path

import pytest

from cowest.config import dump_recipe, load_recipe, load_run_recipe
from cowest.errors import RecipeError

RECIPE = """\
name: t
task:
  name: formulary
weak:
  backend: hf
  model: smollm2-135m-instruct
strong:
  backend: llamacpp
  model: qwen2.5-coder-1.5b-instruct
dpo:
  beta: 0.1
lora:
  r: 8
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_recipe_loads_with_defaults(tmp_path):
    r = load_recipe(write(tmp_path, RECIPE))
    assert r.mining.k == 4 and r.mining.temperature == 0.8 and r.collab.draft_format == "cot"
    assert r.dpo == {"beta": 0.1} and r.rounds == 1


def test_a_run_folder_is_read_where_it_lies_with_the_settings_it_ran_with(tmp_path):
    moved = tmp_path / "elsewhere" / "my-run"
    moved.mkdir(parents=True)
    (moved / "config.yaml").write_text(dump_recipe(load_recipe(write(tmp_path, RECIPE), ["strong.reuse_prefix=true"])))
    r = load_run_recipe(moved, ["mining.k=2"])
    assert r.run_dir == moved and r.strong.reuse_prefix is True and r.mining.k == 2
    with pytest.raises(RecipeError, match="no config.yaml; a run folder that `cowest run` or a stage command"):
        load_run_recipe(tmp_path / "elsewhere")


def test_override_parses_yaml_values(tmp_path):
    r = load_recipe(write(tmp_path, RECIPE), ["dpo.beta=0.2", "mining.k=2", "collab.draft_format=direct"])
    assert r.dpo["beta"] == 0.2 and r.mining.k == 2 and r.collab.draft_format == "direct"


def test_cache_off_reads_as_written_on_the_command_line(tmp_path):
    r = load_recipe(write(tmp_path, RECIPE), ["strong.cache=off", 'weak.cache="off"'])
    assert (r.strong.cache, r.weak.cache) == ("off", "off")


def test_bad_field_names_file_line_and_field(tmp_path):
    bad = RECIPE.replace("  name: formulary", "  name: formulary\n  n_test: many")
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, bad))
    assert "r.yaml:4" in str(e.value) and "task.n_test" in str(e.value)


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(RecipeError, match=r"r.yaml:\d+: field mystery"):
        load_recipe(write(tmp_path, RECIPE + "mystery: 1\n"))


@pytest.mark.parametrize("block,key", [("dpo", "betta"), ("lora", "rank"), ("sft", "epochs")])
def test_unknown_passthrough_key_is_named(tmp_path, block, key):
    with pytest.raises(RecipeError, match=rf"{block}\.{key}: not a field of"):
        load_recipe(write(tmp_path, RECIPE), [f"{block}.{key}=1"])


def test_global_batch_is_cowests_own_key_in_the_trainer_blocks(tmp_path):
    r = load_recipe(write(tmp_path, RECIPE), ["sft.global_batch_size=8", "dpo.global_batch_size=4"])
    assert r.sft == {"global_batch_size": 8} and r.dpo["global_batch_size"] == 4
    with pytest.raises(RecipeError, match="lora.global_batch_size: not a field of LoraConfig"):
        load_recipe(write(tmp_path, RECIPE), ["lora.global_batch_size=8"])


def test_every_problem_at_once_each_with_where_and_field(tmp_path):
    bad = RECIPE.replace("  name: formulary", "  name: formulary\n  n_test: many")
    bad += "mystery: 1\nstrong:\n  backend: hf\n"
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, bad), ["dpo.beta=-1", "mining.k=zero"])
    lines = str(e.value).splitlines()
    assert any(re.match(r".*r.yaml:4: field task.n_test: ", x) for x in lines), lines
    assert any(re.match(r".*r.yaml:\d+: field mystery: ", x) for x in lines), lines
    assert any(re.match(r".*r.yaml:\d+: field strong: duplicate key", x) for x in lines), lines
    # a value from the command line is reported against the option that gave it, not a recipe line
    assert any(x.startswith("--set mining.k=zero: field mining.k: Input should be a valid integer") for x in lines)
    assert any(x.startswith("--set dpo.beta=-1: field dpo.beta: Input should be greater than 0") for x in lines), lines


@pytest.mark.parametrize("override, field", [
    ("dpo.beta=-1", "dpo.beta"), ("sft.learning_rate=-1", "sft.learning_rate"), ("lora.r=0", "lora.r"),
    ("sft.lr_scheduler_type=nope", "sft.lr_scheduler_type"), ("sft.warmup_steps=-1", "sft.warmup_steps"),
    ("sft.global_batch_size=0", "sft.global_batch_size"),
    ("lora.lora_dropout=1.5", "lora.lora_dropout"), ("grpo.num_train_epochs=0", "grpo.num_train_epochs"),
])
def test_trainer_values_are_range_checked_by_name(tmp_path, override, field):
    with pytest.raises(RecipeError, match=rf"--set {re.escape(override)}: field {field}: "):
        load_recipe(write(tmp_path, RECIPE), [override])


def test_bad_override_syntax(tmp_path):
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        load_recipe(write(tmp_path, RECIPE), ["dpo.beta"])


def test_shipped_recipes_validate():
    for path in sorted(Path(__file__).parent.parent.joinpath("recipes").glob("*.yaml")):
        load_recipe(path)


def test_kto_alignment_validates_against_kto_config(tmp_path):
    r = load_recipe(write(tmp_path, RECIPE), ["alignment=kto", "dpo.desirable_weight=1.5"])
    assert r.alignment == "kto" and r.dpo["desirable_weight"] == 1.5
    with pytest.raises(RecipeError, match="dpo.desirable_weight: not a field of DPOConfig"):
        load_recipe(write(tmp_path, RECIPE), ["dpo.desirable_weight=1.5"])


def test_reask_budget_keeps_reading_its_old_name(tmp_path):
    old = load_recipe(write(tmp_path, RECIPE), ["collab.weak_answer_max_tokens=7"])
    assert old.collab.reask_max_tokens == 7
    assert "reask_max_tokens: 7" in dump_recipe(old) and "weak_answer" not in dump_recipe(old)


@pytest.mark.parametrize("override, field", [
    ("mining.k=0", "mining.k"), ("mining.top_p=0", "mining.top_p"), ("mining.temperature=-1", "mining.temperature"),
    ("eval.confidence=1.5", "eval.confidence"), ("eval.n_bootstrap=0", "eval.n_bootstrap"),
    ("collab.draft_max_tokens=0", "collab.draft_max_tokens"), ("task.n_test=0", "task.n_test"),
    ("rounds=0", "rounds"), ("eval.limit=-3", "eval.limit"),
])
def test_numeric_knobs_out_of_range_are_named(tmp_path, override, field):
    with pytest.raises(RecipeError, match=rf"field {field}: "):
        load_recipe(write(tmp_path, RECIPE), [override], check_trainers=False)


def test_rehearsal_without_the_sft_term_of_the_dpo_loss_names_its_line(tmp_path):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, RECIPE + "dpo_rehearsal: 1.0\n"))
    assert re.search(r"r\.yaml:14: field dpo_rehearsal: .*dpo\.loss_type: \[sigmoid, sft\]", str(e.value)), e.value
    ok = RECIPE.replace("  beta: 0.1", "  beta: 0.1\n  loss_type: [sigmoid, sft]") + "dpo_rehearsal: 1.0\n"
    assert load_recipe(write(tmp_path, ok)).dpo_rehearsal == 1.0
