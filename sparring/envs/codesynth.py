"""CodeSynth: write a small Python function from input-output examples (programming by example).

Each task is a random program of a small typed DSL (list, string and integer transformations such
as `sorted`, `[v * 3 for v in x]`, `x.upper()`, `sum`, `len`), shown through a few input-output
examples and graded on those plus hidden tests, through the sandboxed harness of
`sparring.envs.code_grading`. The expert is the generating program rendered as code, a one-liner:

    [3, 1, 2] -> [9, 3, 6]          (the compact prompt: examples only, for a small model)
    [5] -> [15]
    def f(x): return [v * 3 for v in x]

Item `i` of a split is a pure function of `(seed, i)`. `test-unseen` holds programs that never
appear in `train`; `test-seen` holds other examples of the programs of `train`.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sparring.envs.base import SingleTurnEnv, Verdict, check_choice, check_task_keys, item_rng
from sparring.envs.code_grading import (
    REWARDS,
    Call,
    Grade,
    IOTestSuite,
    TestOutcome,
    check_limits,
    check_sandbox_spec,
    extract_code,
    grade,
    resolve_sandbox,
)
from sparring.envs.code_harness import same_value

SPLITS = ("train", "test-seen", "test-unseen")
TYPES = ("ints", "int", "str")  # the input types; ops also produce "strs" (list of str) and "bool"
ENTRY_POINT = "f"
MAX_ATTEMPTS = 10_000
MAX_OPS = 4
LETTERS = "abcde"


# ---- the DSL ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    """One primitive: `template` is its code with `{}` for its argument and `{k}` for its constant."""

    name: str
    source: str  # the input type
    target: str  # the output type
    template: str
    run: Callable[..., Any]
    describe: str
    constants: tuple[int, ...] = ()  # the constants `k` it takes (none: it takes no constant)


def _ops() -> dict[str, Op]:
    ks, small = (2, 3, 4, 5), (1, 2, 3)
    ops = [
        # list of ints -> list of ints
        Op("sort", "ints", "ints", "sorted({})", lambda x: sorted(x), "sort it"),
        Op("sort_desc", "ints", "ints", "sorted({}, reverse=True)", lambda x: sorted(x, reverse=True),
           "sort it in descending order"),
        Op("reverse", "ints", "ints", "{}[::-1]", lambda x: x[::-1], "reverse it"),
        Op("add", "ints", "ints", "[v + {k} for v in {}]", lambda x, k: [v + k for v in x], "add {k} to each element",
           (1, 2, 3, 4, 5)),
        Op("sub", "ints", "ints", "[v - {k} for v in {}]", lambda x, k: [v - k for v in x],
           "subtract {k} from each element", small),
        Op("mul", "ints", "ints", "[v * {k} for v in {}]", lambda x, k: [v * k for v in x],
           "multiply each element by {k}", ks),
        Op("mod", "ints", "ints", "[v % {k} for v in {}]", lambda x, k: [v % k for v in x],
           "take each element modulo {k}", ks),
        Op("div", "ints", "ints", "[v // {k} for v in {}]", lambda x, k: [v // k for v in x],
           "floor-divide each element by {k}", ks),
        Op("square", "ints", "ints", "[v * v for v in {}]", lambda x: [v * v for v in x], "square each element"),
        Op("keep_gt", "ints", "ints", "[v for v in {} if v > {k}]", lambda x, k: [v for v in x if v > k],
           "keep the elements greater than {k}", (2, 3, 4, 5, 6)),
        Op("keep_lt", "ints", "ints", "[v for v in {} if v < {k}]", lambda x, k: [v for v in x if v < k],
           "keep the elements less than {k}", (3, 4, 5, 6, 7)),
        Op("keep_even", "ints", "ints", "[v for v in {} if v % 2 == 0]", lambda x: [v for v in x if v % 2 == 0],
           "keep the even elements"),
        Op("keep_odd", "ints", "ints", "[v for v in {} if v % 2 == 1]", lambda x: [v for v in x if v % 2 == 1],
           "keep the odd elements"),
        Op("drop_first", "ints", "ints", "{}[1:]", lambda x: x[1:], "drop the first element"),
        Op("drop_last", "ints", "ints", "{}[:-1]", lambda x: x[:-1], "drop the last element"),
        Op("take", "ints", "ints", "{}[:{k}]", lambda x, k: x[:k], "keep the first {k} elements", small),
        Op("every_other", "ints", "ints", "{}[::2]", lambda x: x[::2], "keep every other element"),
        Op("unique", "ints", "ints", "sorted(set({}))", lambda x: sorted(set(x)), "sort the distinct elements"),
        Op("double", "ints", "ints", "{} + {}", lambda x: x + x, "repeat the list twice"),
        # list of ints -> int / bool
        Op("sum", "ints", "int", "sum({})", lambda x: sum(x), "return the sum"),
        Op("len", "ints", "int", "len({})", lambda x: len(x), "return the length"),
        Op("max", "ints", "int", "max({})", lambda x: max(x), "return the largest element"),
        Op("min", "ints", "int", "min({})", lambda x: min(x), "return the smallest element"),
        Op("first", "ints", "int", "{}[0]", lambda x: x[0], "return the first element"),
        Op("last", "ints", "int", "{}[-1]", lambda x: x[-1], "return the last element"),
        Op("count", "ints", "int", "{}.count({k})", lambda x, k: x.count(k), "count the elements equal to {k}",
           (0, 1, 2, 3)),
        Op("contains", "ints", "bool", "{k} in {}", lambda x, k: k in x, "tell whether {k} is in it", (0, 1, 2, 3)),
        Op("is_sorted", "ints", "bool", "{} == sorted({})", lambda x: x == sorted(x), "tell whether it is sorted"),
        # int -> int / list / bool / str
        Op("inc", "int", "int", "{} + {k}", lambda x, k: x + k, "add {k}", (1, 2, 3, 4, 5)),
        Op("dec", "int", "int", "{} - {k}", lambda x, k: x - k, "subtract {k}", small),
        Op("times", "int", "int", "{} * {k}", lambda x, k: x * k, "multiply by {k}", ks),
        Op("imod", "int", "int", "{} % {k}", lambda x, k: x % k, "take it modulo {k}", ks),
        Op("idiv", "int", "int", "{} // {k}", lambda x, k: x // k, "floor-divide it by {k}", ks),
        Op("isquare", "int", "int", "{} * {}", lambda x: x * x, "square it"),
        Op("neg", "int", "int", "-{}", lambda x: -x, "negate it"),
        Op("range", "int", "ints", "list(range({}))", lambda x: list(range(x)), "list the numbers from 0 below it"),
        Op("repeat", "int", "ints", "[{}] * {k}", lambda x, k: [x] * k, "repeat it {k} times in a list", small),
        Op("divisible", "int", "bool", "{} % {k} == 0", lambda x, k: x % k == 0, "tell whether {k} divides it", ks),
        Op("greater", "int", "bool", "{} > {k}", lambda x, k: x > k, "tell whether it is greater than {k}",
           (2, 3, 4, 5, 6)),
        Op("digits", "int", "str", "str({})", lambda x: str(x), "write it as a string"),
        # str -> str / int / list / bool
        Op("upper", "str", "str", "{}.upper()", lambda x: x.upper(), "uppercase it"),
        Op("lower", "str", "str", "{}.lower()", lambda x: x.lower(), "lowercase it"),
        Op("swapcase", "str", "str", "{}.swapcase()", lambda x: x.swapcase(), "swap the case of each letter"),
        Op("sreverse", "str", "str", "{}[::-1]", lambda x: x[::-1], "reverse it"),
        Op("sdrop_first", "str", "str", "{}[1:]", lambda x: x[1:], "drop the first character"),
        Op("sdrop_last", "str", "str", "{}[:-1]", lambda x: x[:-1], "drop the last character"),
        Op("stake", "str", "str", "{}[:{k}]", lambda x, k: x[:k], "keep the first {k} characters", small),
        Op("sdouble", "str", "str", "{} + {}", lambda x: x + x, "repeat it twice"),
        Op("ssort", "str", "str", "''.join(sorted({}))", lambda x: "".join(sorted(x)), "sort its characters"),
        Op("nospace", "str", "str", "{}.replace(' ', '')", lambda x: x.replace(" ", ""), "remove the spaces"),
        Op("replace", "str", "str", "{}.replace('a', 'e')", lambda x: x.replace("a", "e"), "replace a with e"),
        Op("slen", "str", "int", "len({})", lambda x: len(x), "return its length"),
        Op("scount", "str", "int", "{}.count('a')", lambda x: x.count("a"), "count the a's"),
        Op("words", "str", "strs", "{}.split()", lambda x: x.split(), "split it into words"),
        Op("chars", "str", "strs", "list({})", lambda x: list(x), "list its characters"),
        Op("palindrome", "str", "bool", "{} == {}[::-1]", lambda x: x == x[::-1], "tell whether it is a palindrome"),
        Op("has_a", "str", "bool", "'a' in {}", lambda x: "a" in x, "tell whether it contains an a"),
        # list of str -> ...
        Op("wlen", "strs", "ints", "[len(w) for w in {}]", lambda x: [len(w) for w in x], "take the length of each"),
        Op("join", "strs", "str", "' '.join({})", lambda x: " ".join(x), "join them with spaces"),
        Op("concat", "strs", "str", "''.join({})", lambda x: "".join(x), "concatenate them"),
        Op("wsort", "strs", "strs", "sorted({})", lambda x: sorted(x), "sort them"),
        Op("wreverse", "strs", "strs", "{}[::-1]", lambda x: x[::-1], "reverse their order"),
        Op("wupper", "strs", "strs", "[w.upper() for w in {}]", lambda x: [w.upper() for w in x], "uppercase each"),
        Op("wcount", "strs", "int", "len({})", lambda x: len(x), "count them"),
    ]
    return {op.name: op for op in ops}


OPS = _ops()


@dataclass(frozen=True)
class Step:
    """An op with its constant (None when it takes none): one link of a program."""

    op: str
    k: int | None = None

    def __str__(self) -> str:
        return self.op if self.k is None else f"{self.op}:{self.k}"

    @classmethod
    def parse(cls, text: Any) -> Step:
        if not isinstance(text, str):
            raise ValueError(f"a program step is a string such as 'sort' or 'mul:3', got {text!r}")
        name, _, k = text.partition(":")
        op = OPS.get(name)
        if op is None:
            raise ValueError(f"unknown CodeSynth op {name!r}; the ops are {', '.join(sorted(OPS))}")
        if op.constants and not (k.lstrip("-").isdigit() and int(k) in op.constants):
            raise ValueError(f"op {name!r} takes a constant among {op.constants}, written {name}:K; got {text!r}")
        if not op.constants and k:
            raise ValueError(f"op {name!r} takes no constant, got {text!r}")
        return cls(name, int(k) if op.constants else None)


def run_program(program: tuple[Step, ...], value: Any) -> Any:
    """The program's output on `value`, computed here by the DSL's own functions (no code is executed)."""
    for step in program:
        op = OPS[step.op]
        value = op.run(value) if step.k is None else op.run(value, step.k)
    return value


def _slots(template: str) -> tuple[list[str], list[bool], bool]:
    """Split a template at its `{}` slots: the text pieces, whether each slot stands at bracket depth 0
    (next to an operator, or before `[`/`.`: its argument must be atomic), and whether the template's own
    result is atomic (a call, a subscript, a display: no operator at depth 0)."""
    pieces, outer, depth, atomic, start, i = [], [], 0, not template.startswith("-"), 0, 0
    while i < len(template):
        if template.startswith("{}", i):
            pieces.append(template[start:i])
            outer.append(depth == 0)
            start = i = i + 2
            continue
        char = template[i]
        depth += char in "([" and 1 or -(char in ")]")
        if char == " " and depth == 0:
            atomic = False
        i += 1
    pieces.append(template[start:])
    return pieces, outer, atomic


def render_expression(program: tuple[Step, ...], variable: str = "x") -> str:
    """The program as one Python expression of `variable`, bracketed where precedence needs it."""
    expression, atomic = variable, True
    for step in program:
        op = OPS[step.op]
        pieces, outer, result_atomic = _slots(op.template.replace("{k}", str(step.k)))
        code = pieces[0]
        for piece, needs_atom in zip(pieces[1:], outer):
            code += (f"({expression})" if needs_atom and not atomic else expression) + piece
        expression, atomic = code, result_atomic
    return expression


def render_program(program: tuple[Step, ...]) -> str:
    """The program as a one-line Python function: `def f(x): return sorted(x)[::-1]`."""
    return f"def {ENTRY_POINT}(x): return {render_expression(program)}"


def describe_program(program: tuple[Step, ...]) -> str:
    parts = [OPS[s.op].describe.replace("{k}", str(s.k)) for s in program]
    return ", then ".join(parts)


# ---- task ---------------------------------------------------------------------------------------

def _check_input(value: Any, kind: str) -> bool:
    if kind == "ints":
        return type(value) is list and all(type(v) is int for v in value)
    if kind == "int":
        return type(value) is int
    return type(value) is str and all(" " <= c <= "~" for c in value)


@dataclass(frozen=True)
class CodeSynthTask:
    program: tuple[Step, ...]
    input_type: str
    examples: tuple[tuple[Any, Any], ...]  # shown in the prompt
    tests: tuple[tuple[Any, Any], ...]  # hidden

    def to_dict(self) -> dict[str, Any]:
        return {"program": [str(s) for s in self.program], "input_type": self.input_type,
                "examples": [[i, o] for i, o in self.examples], "tests": [[i, o] for i, o in self.tests]}

    @classmethod
    def from_dict(cls, data: Any) -> CodeSynthTask:
        """Validate a task dict: the program's steps, the input type, and every example and test, whose
        outputs must be what the program computes."""
        keys = {"program", "input_type", "examples", "tests"}
        check_task_keys("CodeSynth", data, keys)
        if not isinstance(data["program"], list) or not 1 <= len(data["program"]) <= MAX_OPS:
            raise ValueError(f"task 'program' must be a list of 1 to {MAX_OPS} steps, got {data['program']!r}")
        program = tuple(Step.parse(s) for s in data["program"])
        kind = check_choice("CodeSynth input_type", data["input_type"], TYPES)
        current = kind
        for step in program:
            if OPS[step.op].source != current:
                raise ValueError(f"op {step.op!r} takes {OPS[step.op].source}, but gets {current} in {data['program']}")
            current = OPS[step.op].target
        pairs = {}
        for name in ("examples", "tests"):
            items = data[name]
            if not isinstance(items, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in items):
                raise ValueError(f"task {name!r} must be a list of [input, output] pairs")
            for given, output in items:
                if not _check_input(given, kind):
                    raise ValueError(f"input {given!r} is not of input_type {kind!r}")
                try:
                    computed = run_program(program, given)
                except Exception as error:  # noqa: BLE001  (a DSL op failed on this input)
                    raise ValueError(f"the program fails on input {given!r}: {error}") from None
                if not same_value(computed, output):
                    raise ValueError(f"the output for {given!r} is {output!r}, but the program computes {computed!r}")
            pairs[name] = tuple((given, output) for given, output in items)
        if not pairs["examples"]:
            raise ValueError("a CodeSynth task needs at least one example")
        return cls(program, kind, pairs["examples"], pairs["tests"])

    def suite(self) -> IOTestSuite:
        cases = self.examples + self.tests
        return IOTestSuite(ENTRY_POINT, [Call([given]) for given, _ in cases], [output for _, output in cases])


# ---- generator ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CodeSynthConfig:
    """The difficulty knobs. `num_ops` is a count or an inclusive (min, max) range."""

    num_ops: int | tuple[int, int] = 1  # DSL operations composed per program: a count or a (min, max) range, up to 3
    input_types: tuple[str, ...] = TYPES  # input types drawn: ints (a list), int, str
    min_value: int = 0             # smallest integer in inputs
    max_value: int = 9             # largest integer in inputs
    min_length: int = 2            # shortest list or string input
    max_length: int = 5            # longest list or string input
    examples: int = 3              # input/output examples shown in the prompt
    tests: int = 6                 # hidden tests that decide success
    unambiguous: bool = True  # the examples rule out every one-op program that disagrees on the tests
    excluded_ops: tuple[str, ...] = field(default=())  # DSL operations never drawn

    def __post_init__(self) -> None:
        for name in ("num_ops", "input_types", "excluded_ops"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        low, high = self.num_ops if isinstance(self.num_ops, tuple) and len(self.num_ops) == 2 else (self.num_ops,) * 2
        integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
        if not integers or not 1 <= low <= high <= MAX_OPS:
            raise ValueError(f"num_ops must be an integer or a (min, max) pair in 1..{MAX_OPS}, got {self.num_ops!r}")
        if not self.input_types or not all(t in TYPES for t in self.input_types):
            raise ValueError(f"input_types must be a non-empty subset of {TYPES}, got {self.input_types!r}")
        for name in ("min_value", "max_value", "min_length", "max_length", "examples", "tests"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if not -1000 <= self.min_value <= self.max_value <= 1000:
            raise ValueError(f"need -1000 <= min_value <= max_value <= 1000, got {self.min_value}, {self.max_value}")
        if not 0 <= self.min_length <= self.max_length <= 20:
            raise ValueError(f"need 0 <= min_length <= max_length <= 20, got {self.min_length}, {self.max_length}")
        if not (1 <= self.examples <= 10 and 0 <= self.tests <= 50):
            raise ValueError(f"need 1 <= examples <= 10 and 0 <= tests <= 50, got {self.examples}, {self.tests}")
        unknown = [name for name in self.excluded_ops if name not in OPS]
        if unknown:
            raise ValueError(f"unknown ops in excluded_ops: {unknown}; the ops are {', '.join(sorted(OPS))}")

    @property
    def ops_range(self) -> tuple[int, int]:
        return self.num_ops if isinstance(self.num_ops, tuple) else (self.num_ops, self.num_ops)


PRESETS = {
    "easy": CodeSynthConfig(num_ops=1),
    "medium": CodeSynthConfig(num_ops=2, max_length=6, examples=4),
    "hard": CodeSynthConfig(num_ops=(3, 3), min_value=-9, max_value=20, max_length=7, examples=5, tests=8),
}


def _random_input(kind: str, config: CodeSynthConfig, rng: random.Random) -> Any:
    length = rng.randint(config.min_length, config.max_length)
    if kind == "int":
        return rng.randint(config.min_value, config.max_value)
    if kind == "ints":
        return [rng.randint(config.min_value, config.max_value) for _ in range(length)]
    words, size = [], 0
    while size < max(1, length):  # short words of a few letters, some upper case, between single spaces
        word = "".join(rng.choice(LETTERS).upper() if rng.random() < 0.25 else rng.choice(LETTERS)
                       for _ in range(rng.randint(1, 3)))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def _random_program(config: CodeSynthConfig, rng: random.Random) -> tuple[str, tuple[Step, ...]] | None:
    kind = rng.choice(config.input_types)
    current, steps = kind, []
    for _ in range(rng.randint(*config.ops_range)):
        choices = [op for op in OPS.values() if op.source == current and op.name not in config.excluded_ops]
        if not choices:
            return None
        op = rng.choice(choices)
        steps.append(Step(op.name, rng.choice(op.constants) if op.constants else None))
        current = op.target
    return kind, tuple(steps)


def _outputs(program: tuple[Step, ...], inputs: list[Any]) -> list[Any] | None:
    try:
        outputs = [run_program(program, value) for value in inputs]
    except Exception:  # noqa: BLE001  (an op undefined on an input: max of [], x[0] of "")
        return None
    return outputs if all(_small(o) for o in outputs) else None


def _small(value: Any) -> bool:
    return len(repr(value)) <= 60


def _one_op_programs(kind: str) -> list[tuple[Step, ...]]:
    return [(Step(op.name, k),) for op in OPS.values() if op.source == kind for k in (op.constants or (None,))]


_ONE_OP = {kind: _one_op_programs(kind) for kind in TYPES}


def _is_ambiguous(program: tuple[Step, ...], kind: str, examples: list[Any], tests: list[Any]) -> bool:
    """Whether some one-op program agrees with `program` on every example and disagrees on a test."""
    # (never None: the caller drew these inputs where `program` is defined)
    wanted_examples = cast("list[Any]", _outputs(program, examples))
    wanted_tests = cast("list[Any]", _outputs(program, tests))
    for other in _ONE_OP[kind]:
        if other == program:
            continue
        got = _outputs(other, examples)
        if got is not None and all(same_value(a, b) for a, b in zip(got, wanted_examples)):
            on_tests = _outputs(other, tests)
            if on_tests is None or not all(same_value(a, b) for a, b in zip(on_tests, wanted_tests)):
                return True
    return False


def _is_degenerate(program: tuple[Step, ...], inputs: list[Any], outputs: list[Any]) -> bool:
    """A program that ignores its input, returns it unchanged, or holds a step that changes nothing."""
    if all(same_value(o, outputs[0]) for o in outputs) or all(same_value(i, o) for i, o in zip(inputs, outputs)):
        return True
    for drop in range(len(program)):
        shorter = program[:drop] + program[drop + 1:]
        if not shorter:
            continue
        kinds_ok = all(OPS[a.op].target == OPS[b.op].source for a, b in zip(shorter, shorter[1:]))
        if kinds_ok and OPS[shorter[0].op].source == OPS[program[0].op].source:
            got = _outputs(shorter, inputs)
            if got is not None and all(same_value(a, b) for a, b in zip(got, outputs)):
                return True
    return False


def program_key(program: tuple[Step, ...], kind: str) -> str:
    return f"{kind}:{'|'.join(map(str, program))}"


def is_held_out_program(program: tuple[Step, ...], kind: str) -> bool:
    """About one program in eight never appears in `train` (a fixed hash, so every seed agrees)."""
    return zlib.crc32(program_key(program, kind).encode()) % 8 == 0


def split_of(task: CodeSynthTask) -> str:
    if is_held_out_program(task.program, task.input_type):
        return "test-unseen"
    key = f"{program_key(task.program, task.input_type)}>{task.examples!r}"
    return "test-seen" if zlib.crc32(key.encode()) % 10 == 0 else "train"


def sample_task(config: CodeSynthConfig, split: str, rng: random.Random) -> CodeSynthTask:
    """A task of `split` drawn with `rng`: a random well-typed program, then distinct random inputs on which
    it is defined, redrawn until it is not degenerate, (optionally) unambiguous, and in `split`."""
    for _ in range(MAX_ATTEMPTS):
        drawn = _random_program(config, rng)
        if drawn is None:
            continue
        kind, program = drawn
        if (split == "test-unseen") != is_held_out_program(program, kind):
            continue
        inputs: list[Any] = []
        for _ in range(20 * (config.examples + config.tests)):
            value = _random_input(kind, config, rng)
            if value not in inputs and _outputs(program, [value]) is not None:
                inputs.append(value)
            if len(inputs) == config.examples + config.tests:
                break
        outputs = _outputs(program, inputs) if len(inputs) == config.examples + config.tests else None
        if outputs is None or _is_degenerate(program, inputs, outputs):
            continue
        examples, tests = inputs[:config.examples], inputs[config.examples:]
        if config.unambiguous and _is_ambiguous(program, kind, examples, tests):
            continue
        task = CodeSynthTask(program, kind, tuple(zip(examples, outputs[:config.examples])),
                             tuple(zip(tests, outputs[config.examples:])))
        if split_of(task) == split:
            return task
    raise ValueError(f"could not generate a {split!r} CodeSynth task for {config} in {MAX_ATTEMPTS} attempts: "
                     "the knobs leave too few programs or inputs; widen the value or length ranges")


def generate_task(config: CodeSynthConfig, split: str = "train", seed: int = 0, index: int = 0) -> CodeSynthTask:
    """Item `index` of `split` for `seed`: a pure function of its arguments."""
    return sample_task(config, split, item_rng("CodeSynth", split, SPLITS, seed, index))


# ---- prompt and solutions -----------------------------------------------------------------------

INSTRUCTIONS = ("full", "compact")


def prompt(task: CodeSynthTask, instruction: str = "full") -> str:
    """`compact`: the examples, one `input -> output` per line (short, for a small model); `full`: a
    description of the function too, and what to answer."""
    lines = "\n".join(f"{given!r} -> {output!r}" for given, output in task.examples)
    if instruction == "compact":
        return lines
    calls = "\n".join(f"    {ENTRY_POINT}({given!r}) == {output!r}" for given, output in task.examples)
    return (f"Write a Python function `{ENTRY_POINT}(x)` that takes {_NOUNS[task.input_type]} and does this: "
            f"{describe_program(task.program)}.\nExamples:\n{calls}\n"
            "Answer with the function in a ```python code block.")


_NOUNS = {"ints": "a list of integers", "int": "an integer", "str": "a string"}


def expert_solution(task: CodeSynthTask) -> str:
    return render_program(task.program)


class CodeSynthEnv(SingleTurnEnv):
    """CodeSynth in one turn: the observation shows input-output examples, the action is the function.

    ## Action Space
    Text: a Python program defining `f(x)` (the last ```python block, or the raw text).
    ## Observation Space
    Text: the examples (`compact`: one `input -> output` per line; `full`: with a description); after
    the step, the verdict's feedback (failing tests with input, expected, value returned, error).
    ## Reward
    1.0 when the examples and the hidden tests all pass; else the fraction passed (`reward="fraction"`)
    or 0 (`"binary"`).
    ## Episode End
    Terminates after one step.
    ## Arguments
    - `split`: "train", "test-seen" or "test-unseen" (held-out: never in train)
    - `difficulty`: "easy" one op, "medium" two, "hard" three; the knobs of `CodeSynthConfig` below refine it
    - `reward`: "fraction" (of the tests passed) or "binary" (1.0 only when all pass)
    - `instruction`: "full" or "compact" (for small models)
    - `sandbox`: where programs run: "local", "docker" or a `sparring.sandboxes` Sandbox
    - `timeout_s`: wall seconds per program run
    - `call_timeout_s`: CPU seconds per test call
    - `memory_mb`: memory cap of a program run
    - `trust_reference`: True: an answer whose code is exactly the reference program passes without a sandbox
      run (the reference computes the expected outputs by construction, so this only saves time, e.g. when a
      bootstrap's demonstrations are verified by the thousand); every other answer still runs
    ## Version History
    v0: initial version.
    """

    family = "code"
    skill_kind = "function"  # a function a verified answer defined, shown to later tasks as code to call or copy
    task_type = CodeSynthTask
    config_class = CodeSynthConfig
    presets = PRESETS
    splits = SPLITS

    def __init__(self, render_mode: str | None = None, *, split: str = "train", difficulty: str | None = None,
                 reward: str = "fraction", instruction: str = "full", sandbox: Any = "local", timeout_s: float = 10.0,
                 call_timeout_s: float = 1.0, memory_mb: int = 256, trust_reference: bool = False, **knobs: Any):
        super().__init__(render_mode, split=split, difficulty=difficulty,
                         env_args=("reward", "instruction", "sandbox", "timeout_s", "call_timeout_s", "memory_mb",
                                   "trust_reference"), **knobs)
        if not isinstance(trust_reference, bool):
            raise TypeError(f"trust_reference must be True or False, got {trust_reference!r}")
        self.trust_reference = trust_reference
        self.reward_mode = check_choice("CodeSynth reward", reward, REWARDS)
        self.instruction = check_choice("CodeSynth instruction", instruction, INSTRUCTIONS)
        self.sandbox_spec = check_sandbox_spec(sandbox)
        self.limits = check_limits(timeout_s, call_timeout_s, memory_mb)

    def generate_task(self, index: int, *, seed: int = 0, config: CodeSynthConfig | None = None) -> CodeSynthTask:
        return generate_task(config or self.config, self.split, seed, index)

    def sample_task(self, rng: random.Random, config: CodeSynthConfig) -> CodeSynthTask:
        return sample_task(config, self.split, rng)

    def grade(self, program: str) -> Grade:
        suite = self.task.suite()
        if self.trust_reference and program.strip() == expert_solution(self.task):
            outcomes = [TestOutcome(True, f"test {i}") for i in range(suite.total)]  # feedback lists failures only
            return Grade(outcomes, suite.total, status="reference", isolation="none: the reference program")
        return grade(resolve_sandbox(self.sandbox_spec), program, suite, **self.limits)

    def verify(self, answer: str) -> Verdict:
        return self.grade(extract_code(answer, ENTRY_POINT)).verdict(self.reward_mode)

    def _begin(self) -> tuple[str, dict[str, Any]]:
        return prompt(self.task, self.instruction), {}

    def expert_answer(self) -> str:
        return expert_solution(self.task)
