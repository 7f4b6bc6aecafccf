"""HFPRMVerifier on tiny randomly initialised models built here, one per style: what is
fed to the model, which logits a step's score comes from, batching, the cache and the
ledger. No download: the tokenizers are word-level vocabularies made with ``tokenizers``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from _stub import StubTask

from ponder.core.budget import Ledger
from ponder.core.errors import BudgetExceeded, ConfigError, MissingExtra
from ponder.core.types import Completion, Problem, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context
from ponder.verifiers.registry import make_process_verifier, make_scorer

HAVE_HF = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
needs_hf = pytest.mark.skipif(
    not HAVE_HF, reason="torch and transformers are not installed: pip install 'ponder[hf]'"
)

QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
# Qwen's ChatML layout, enough of it for the tokens to be those the real template gives
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["[UNK]", "[PAD]", "<s>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
# the word-level vocabulary: every word the tests' texts use, the step tags and + / -
VOCAB_TEXT = """
system user assistant Please reason step by and put your final answer within boxed
what is two plus three four five six doubled so the we add then double it
ки + - = . , \\ { } : 1 2 3 4 5 6 8 10 12 Step
"""
WORDS = VOCAB_TEXT.split()

PROBLEM = Problem("p1", "what is two plus two , doubled")
PATH = ("two plus two = 4", "then double it : 8", "so the answer is \\boxed{8}")


def write_tokenizer(folder: Path, *, bos: bool) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(dict.fromkeys(SPECIALS + WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIALS)
    if bos:  # Mistral's tokenizer starts every text with <s>
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="<s>",
        chat_template=CHAT_TEMPLATE,
    )
    fast.save_pretrained(folder)


def vocab_size() -> int:
    return len(dict.fromkeys(SPECIALS + WORDS))


def tiny(config_cls):
    return config_cls(
        vocab_size=vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    """A Qwen2.5-Math-PRM-shaped checkpoint: a Qwen2 backbone saved under ``model.``, the
    head as ``score.0`` / ``score.2``, and a config that points at remote code which is
    not there (loading must not need it). Returns the folder and the modules, to compute
    expected scores by hand."""
    if not HAVE_HF:
        pytest.skip("torch and transformers are not installed: pip install 'ponder[hf]'")
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2Model

    folder = tmp_path_factory.mktemp("qwen_prm")
    torch.manual_seed(0)
    config = tiny(Qwen2Config)
    backbone = Qwen2Model(config).eval()
    head = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    with torch.no_grad():  # logits away from 0, so scores spread over (0, 1)
        head[2].weight.mul_(5)
    head.eval()
    state = {f"model.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    state.update({f"score.{k}": v.contiguous() for k, v in head.state_dict().items()})
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_absent.Qwen2ForProcessRewardModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    write_tokenizer(folder, bos=False)
    return folder, backbone, head


@pytest.fixture(scope="module")
def shepherd_dir(tmp_path_factory):
    if not HAVE_HF:
        pytest.skip("torch and transformers are not installed: pip install 'ponder[hf]'")
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    folder = tmp_path_factory.mktemp("shepherd_prm")
    torch.manual_seed(1)
    model = MistralForCausalLM(tiny(MistralConfig)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    model.save_pretrained(folder)
    write_tokenizer(folder, bos=True)
    return folder, model


def make_ctx():
    return Context(engine=ScriptedEngine(["unused"]), task=StubTask(), ledger=Ledger())


def qwen_by_hand(folder, backbone, head, question, steps):
    """The model card's recipe, written out: chat, <extra_0> after each step, softmax
    of the head's two logits at each <extra_0>, class 1."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    messages = [
        {"role": "system", "content": QWEN_SYSTEM},
        {"role": "user", "content": question},
        {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
    with torch.no_grad():
        logits = head(backbone(input_ids=ids).last_hidden_state)
    every = logits[0].softmax(-1)[:, 1]
    tags = (ids[0] == tok.convert_tokens_to_ids("<extra_0>")).nonzero()[:, 0]
    return every[tags].tolist(), ids.shape[1], every[tags - 1].tolist()


def shepherd_by_hand(folder, model, question, steps, sep="\n\n"):
    """Math-Shepherd's recipe: "{question} {steps with ' ки' after each}", the logits of
    '+' and '-' at each ки, P(+) normalised over the two."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    plus_minus = tok.encode("+ -", add_special_tokens=False)
    tag = tok.encode("ки", add_special_tokens=False)[-1]
    text = f"{question} " + sep.join(f"{s} ки" for s in steps)
    ids = torch.tensor([tok.encode(text)])
    assert ids[0, 0] == tok.bos_token_id  # the tokenizer adds <s>, as Mistral's does
    with torch.no_grad():
        every = model(input_ids=ids).logits[0][:, plus_minus].softmax(-1)[:, 0]
    tags = (ids[0] == tag).nonzero()[:, 0]
    return every[tags].tolist(), ids.shape[1], every[tags - 1].tolist()


@needs_hf
async def test_qwen_scores_match_the_model_card_recipe(qwen_dir):
    from ponder.verifiers.hf_prm import HFPRMVerifier

    folder, backbone, head = qwen_dir
    v = HFPRMVerifier(str(folder), style="qwen")
    ctx = make_ctx()
    [scores] = await v.score_paths(PROBLEM, [PATH], ctx)
    expected, n_tokens, shifted = qwen_by_hand(folder, backbone, head, PROBLEM.question, PATH)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores == pytest.approx(expected, abs=1e-5)
    # reading one token early would give other scores: the test sees the position
    assert all(abs(a - b) > 1e-3 for a, b in zip(scores, shifted, strict=True))
    assert ctx.ledger.total("score") == Usage(prompt_tokens=n_tokens, calls=1)
    [event] = ctx.ledger.events
    assert (event.kind, event.label) == ("score", "hfprm") and event.seconds > 0


@needs_hf
async def test_shepherd_scores_match_the_model_card_recipe(shepherd_dir):
    from ponder.verifiers.hf_prm import HFPRMVerifier

    folder, model = shepherd_dir
    v = HFPRMVerifier(str(folder), style="shepherd")
    ctx = make_ctx()
    [scores] = await v.score_paths(PROBLEM, [PATH], ctx)
    expected, n_tokens, shifted = shepherd_by_hand(folder, model, PROBLEM.question, PATH)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores == pytest.approx(expected, abs=1e-5)
    assert all(abs(a - b) > 1e-3 for a, b in zip(scores, shifted, strict=True))
    assert ctx.ledger.total("score") == Usage(prompt_tokens=n_tokens, calls=1)


@needs_hf
async def test_shepherd_separates_steps_as_the_segmentation_writes_them(shepherd_dir):
    from ponder.verifiers.hf_prm import HFPRMVerifier

    folder, model = shepherd_dir
    v = HFPRMVerifier(str(folder), style="shepherd", segmentation="lines")
    text, ends = v.render("q", ["a", "b"])
    assert text == "q a ки\nb ки" and [text[:e] for e in ends] == ["q a ки", "q a ки\nb ки"]
    [scores] = await v.score_paths(PROBLEM, [PATH], make_ctx())
    expected, _, _ = shepherd_by_hand(folder, model, PROBLEM.question, PATH, sep="\n")
    assert scores == pytest.approx(expected, abs=1e-5)


@needs_hf
@pytest.mark.parametrize("style", ["qwen", "shepherd"])
async def test_paths_batched_together_score_as_they_do_alone(style, qwen_dir, shepherd_dir):
    from ponder.verifiers.hf_prm import HFPRMVerifier

    folder = (qwen_dir if style == "qwen" else shepherd_dir)[0]
    paths = [PATH, (PATH[0], "we add 2 and 2 , then 4 + 4 = 8"), ("10",)]
    alone = [
        (await HFPRMVerifier(str(folder), style=style).score_paths(PROBLEM, [p], make_ctx()))[0]
        for p in paths
    ]
    v = HFPRMVerifier(str(folder), style=style)
    ctx = make_ctx()
    together = await v.score_paths(PROBLEM, paths, ctx)
    for got, want in zip(together, alone, strict=True):
        assert got == pytest.approx(want, abs=1e-5)
    # three paths of different lengths, right-padded into one forward pass
    assert ctx.ledger.total("score").calls == 1
    # a token budget per pass small enough for one path at a time: three passes
    small = HFPRMVerifier(str(folder), style=style, max_batch_tokens=1)
    ctx = make_ctx()
    for got, want in zip(await small.score_paths(PROBLEM, paths, ctx), together, strict=True):
        assert got == pytest.approx(want, abs=1e-5)
    assert ctx.ledger.total("score").calls == 3


REMOTE_CODE = """
import torch
from transformers import Qwen2Model, Qwen2PreTrainedModel


class FlippedPRM(Qwen2PreTrainedModel):
    # the checkpoint's own code, made recognisable: its classes are swapped, and it
    # answers with a tuple as older remote code does
    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2Model(config)
        h = config.hidden_size
        self.score = torch.nn.Sequential(
            torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 2)
        )
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return (self.score(hidden.last_hidden_state).flip(-1),)
"""


@needs_hf
async def test_remote_code_runs_only_when_trusted(qwen_dir, tmp_path, monkeypatch):
    import shutil

    import transformers.dynamic_module_utils as dynamic

    from ponder.verifiers.hf_prm import HFPRMVerifier

    # transformers copies remote code into a module cache: keep it in tmp_path
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder = tmp_path / "remote"
    shutil.copytree(qwen_dir[0], folder)
    (folder / "modeling_flipped.py").write_text(REMOTE_CODE)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_flipped.FlippedPRM"}
    (folder / "config.json").write_text(json.dumps(cfg))

    [ours] = await HFPRMVerifier(str(folder)).score_paths(PROBLEM, [PATH], make_ctx())
    trusted = HFPRMVerifier(str(folder), trust_remote_code=True)
    [theirs] = await trusted.score_paths(PROBLEM, [PATH], make_ctx())
    assert type(trusted._net).__name__ == "FlippedPRM"
    assert theirs == pytest.approx([1 - s for s in ours], abs=1e-5)


@needs_hf
async def test_cached_steps_are_not_forwarded_again(qwen_dir):
    from ponder.verifiers.hf_prm import HFPRMVerifier

    folder, backbone, head = qwen_dir
    v = HFPRMVerifier(str(folder), style="qwen")
    ctx = make_ctx()
    [first] = await v.score_paths(PROBLEM, [PATH[:2]], ctx)
    [whole] = await v.score_paths(PROBLEM, [PATH], ctx)
    assert whole[:2] == first and v.steps_scored == 3
    # the second pass forwarded the whole path once (a causal model needs the prefix)
    _, n_two, _ = qwen_by_hand(folder, backbone, head, PROBLEM.question, PATH[:2])
    _, n_three, _ = qwen_by_hand(folder, backbone, head, PROBLEM.question, PATH)
    assert [e.usage for e in ctx.ledger.events] == [
        Usage(prompt_tokens=n_two, calls=1),
        Usage(prompt_tokens=n_three, calls=1),
    ]
    # all cached: no pass, nothing on the ledger
    await v.score_paths(PROBLEM, [PATH, PATH[:1]], ctx)
    assert len(ctx.ledger.events) == 2


@needs_hf
async def test_a_step_tag_inside_the_text_does_not_shift_the_scores(qwen_dir, shepherd_dir):
    from ponder.verifiers.hf_prm import HFPRMVerifier

    # qwen: a stray <extra_0> is dropped from the text, so it scores as if absent
    v = HFPRMVerifier(str(qwen_dir[0]), style="qwen")
    [stray] = await v.score_paths(PROBLEM, [("two plus<extra_0> two = 4", "8")], make_ctx())
    [clean] = await HFPRMVerifier(str(qwen_dir[0])).score_paths(
        PROBLEM, [("two plus two = 4", "8")], make_ctx()
    )
    assert stray == pytest.approx(clean, abs=1e-6)
    # shepherd: the tag word inside a step is text; only the tags ponder adds count
    folder, model = shepherd_dir
    v = HFPRMVerifier(str(folder), style="shepherd")
    steps = ("we add ки two", "8")
    [scores] = await v.score_paths(PROBLEM, [steps], make_ctx())
    # by hand, the text has three ки: the stray one, then the two after the steps
    every_tag, _, _ = shepherd_by_hand(folder, model, PROBLEM.question, steps)
    assert len(every_tag) == 3
    assert scores == pytest.approx(every_tag[1:], abs=1e-5)


@needs_hf
async def test_outcome_scoring_through_the_registry(qwen_dir):
    folder, backbone, head = qwen_dir
    v = make_scorer(f"hfprm:{folder},style=qwen,device=cpu,agg=min")
    assert v.name == f"hfprm:{folder}" and not v.needs_logprobs
    assert make_process_verifier(f"hfprm:{folder}").style == "qwen"
    text = "\n\n".join(PATH)
    [score] = await v.score(PROBLEM, [Completion(text, "stop", Usage())], make_ctx())
    expected, _, _ = qwen_by_hand(folder, backbone, head, PROBLEM.question, PATH)
    assert score.steps == pytest.approx(expected, abs=1e-5)
    assert score.value == pytest.approx(min(expected), abs=1e-5)


@needs_hf
async def test_budget_is_checked_before_the_forward_pass(qwen_dir):
    from ponder.verifiers.hf_prm import HFPRMVerifier

    v = HFPRMVerifier(str(qwen_dir[0]))
    ctx = make_ctx()
    with ctx.ledger.budget(calls=0), pytest.raises(BudgetExceeded):
        await v.score_paths(PROBLEM, [PATH], ctx)
    assert ctx.ledger.events == () and v.steps_scored == 0


@needs_hf
def test_bad_options_are_config_errors(tmp_path, qwen_dir, shepherd_dir):
    from ponder.verifiers.hf_prm import HFPRMVerifier

    with pytest.raises(ConfigError, match="unknown PRM style 'orm'"):
        HFPRMVerifier(str(qwen_dir[0]), style="orm")
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        HFPRMVerifier(str(qwen_dir[0]), device="gpu")
    with pytest.raises(ConfigError, match="unknown dtype"):
        HFPRMVerifier(str(qwen_dir[0]), dtype="int4")
    with pytest.raises(ConfigError, match="unknown aggregation"):
        make_scorer(f"hfprm:{qwen_dir[0]},agg=max")
    with pytest.raises(ConfigError, match="takes no option"):
        make_scorer(f"hfprm:{qwen_dir[0]},batch=3")
    # a missing folder fails at once; a folder without a model fails when loading
    with pytest.raises(ConfigError, match="not found"):
        HFPRMVerifier(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="cannot load process reward model"):
        HFPRMVerifier(str(tmp_path)).load()
    # a Mistral causal LM is not a qwen-style PRM
    with pytest.raises(ConfigError, match=r"'mistral' model; style qwen.*style=shepherd"):
        HFPRMVerifier(str(shepherd_dir[0]), style="qwen").load()


@needs_hf
def test_a_qwen2_checkpoint_without_the_head_is_refused(tmp_path):
    """A plain Qwen2 LM has the backbone but no ``score`` head; loading it as a PRM would
    score with a random head, so it is an error instead."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ponder.verifiers.hf_prm import HFPRMVerifier

    Qwen2ForCausalLM(tiny(Qwen2Config)).save_pretrained(tmp_path)
    write_tokenizer(tmp_path, bos=False)
    with pytest.raises(
        ConfigError, match=r"no process reward head \(missing score\.\d\.(weight|bias)"
    ):
        HFPRMVerifier(str(tmp_path), style="qwen").load()


@needs_hf
def test_cuda_without_a_gpu_is_a_clear_error(qwen_dir):
    import torch

    from ponder.verifiers.hf_prm import HFPRMVerifier

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        HFPRMVerifier(str(qwen_dir[0]), device="cuda").load()
    v = HFPRMVerifier(str(qwen_dir[0]), device="auto")
    v.load()
    assert v._resolve_device(torch) in ("cpu", "mps")


def test_missing_torch_names_the_extra(monkeypatch):
    import ponder.verifiers.hf_prm as hf_prm

    real = importlib.util.find_spec
    monkeypatch.setattr(
        hf_prm.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real(name, *a),
    )
    with pytest.raises(MissingExtra, match=r"pip install 'ponder\[hf\]'"):
        hf_prm.HFPRMVerifier("some/model")
