"""Bounds on rendering a reply template: time, loops, ranges, sizes and output.

Jinja2's sandbox keeps a template from reaching outside (``__class__``, files, imports)
but not from spending the machine: ``range(100000)`` loops nest, ``'a' * 10**10``
and ``10 ** 10**10`` allocate gigabytes, and a loop that prints nothing never
stops. :class:`BoundedSandbox` (a ``SandboxedEnvironment``) bounds every way a
template can spend time or memory, with the limits of :class:`Limits` (settings of
``[knowledgebase]``, see ``DEFAULTS``):

* **time**: a deadline (``template_time_limit`` seconds) checked at every loop
  iteration, call, filter, operator and piece of output;
* **loops**: ``range()`` gives at most ``template_max_range`` numbers, and all loops
  of one render together run at most ``template_max_loop_iterations`` times;
* **sizes**, checked *before* the work where the size comes from a number
  (``*`` on text and lists, ``**``, widths such as ``center(10**9)`` or ``'%9999999d'``,
  ``replace``, ``join``, ``batch``/``slice`` with a count) and after it otherwise:
  no text, list or mapping a template builds may exceed ``template_max_output``
  characters or items (counted deeply: a list of two texts of 10 characters counts
  22), no whole number may exceed :data:`MAX_NUMBER_BITS` bits, and everything one
  render builds or prints together may not exceed :data:`BUILT_FACTOR` times
  ``template_max_output``;
* **output**: the text is streamed (``Template.generate``) and refused past
  ``template_max_output`` characters.

Past a limit, :class:`TemplateLimit` is raised (the caller turns it into a
``ValidationError`` naming the template, the line and the setting). Three kinds of
template code get hooks through the parse tree: every ``for`` loop's iterable is
counted, ``~`` and list/tuple/dict literals are size-checked, and every piece of
output (literal text included) is counted against the total. Nothing else of the
template's meaning changes.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
import reprlib
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from numbers import Number
from typing import Any

import attrs
from jinja2 import nodes
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context, LoopContext, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import pass_context, pass_environment
from jinja2.visitor import NodeTransformer

from crmkit_knowledgebase.limit_settings import DEFAULTS, validate_settings  # noqa: F401 (re-exported)

#: the largest whole number a template may compute: 10**1000 fits (3,322 bits), 10**10000 not
MAX_NUMBER_BITS = 4096
#: all a render builds and prints together: at most this many times template_max_output
BUILT_FACTOR = 20

NUMBERS = f"templates compute with whole numbers of at most {MAX_NUMBER_BITS:,} bits"
WRITE_WIDTH = "write the width as a number in the format"

# names of the hooks put into templates; a template can not write them (no ':' in names)
LOOP = "kb:loop"
BUILT = "kb:built"
CONCAT = "kb:concat"
OUTPUT = "kb:output"


@attrs.frozen
class Limits:
    """What one render may spend (the trial render at save has the same limits)."""

    time_limit: float = DEFAULTS["template_time_limit"]
    max_output: int = DEFAULTS["template_max_output"]
    max_range: int = DEFAULTS["template_max_range"]
    max_loop_iterations: int = DEFAULTS["template_max_loop_iterations"]

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Limits:
        """The limits from the ``[knowledgebase]`` settings (defaults for those not given)."""
        return cls(
            **{
                name.removeprefix("template_"): settings.get(name, v)
                for name, v in DEFAULTS.items()
            }
        )

    @property
    def max_built(self) -> int:
        return self.max_output * BUILT_FACTOR


class TemplateLimit(Exception):  # noqa: N818 - "limit" says what it is, as Jinja's names do
    """A render went past a limit: ``what`` happened; ``setting`` raises the limit (None: a
    fixed limit); ``fix`` says how to change the template, if not by doing less."""

    def __init__(self, what: str, setting: str | None = None, fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.setting = setting
        self.fix = fix


# --------------------------------------------------------------------------
# the state of one render: deadline, loop iterations, everything built
# --------------------------------------------------------------------------


@attrs.define
class _Render:
    limits: Limits
    deadline: float
    iterations: int = 0
    built: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(
                f"it ran longer than {self.limits.time_limit:g} seconds", "template_time_limit"
            )

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_loop_iterations:
            raise TemplateLimit(
                f"its loops ran more than {self.limits.max_loop_iterations:,} times",
                "template_max_loop_iterations",
            )
        self.tick()

    def charge(self, amount: int) -> None:
        self.built += amount
        if self.built > self.limits.max_built:
            raise TemplateLimit(
                f"it built and printed more than {self.limits.max_built:,} characters and items "
                f"in all ({BUILT_FACTOR} times template_max_output)",
                "template_max_output",
            )


_CURRENT: contextvars.ContextVar[_Render | None] = contextvars.ContextVar(
    "crmkit_knowledgebase_render", default=None
)


def _tick() -> None:
    render = _CURRENT.get()
    if render is not None:  # outside a render (Jinja2 folding constants at compile): sizes only
        render.tick()


def _charge(amount: int) -> None:
    render = _CURRENT.get()
    if render is not None:
        render.charge(amount)


def render_bounded(template: Any, context: Mapping[str, Any], limits: Limits) -> str:
    """Render ``template`` (compiled by a :class:`BoundedSandbox`) within ``limits``,
    streaming: the output is refused as soon as it grows past ``template_max_output``."""
    state = _Render(limits, time.monotonic() + limits.time_limit)
    token = _CURRENT.set(state)
    try:
        chunks = []
        length = 0
        stream = template.generate(**context)
        try:
            for chunk in stream:
                length += len(chunk)
                if length > limits.max_output:
                    raise TemplateLimit(
                        f"its text grew longer than {limits.max_output:,} characters",
                        "template_max_output",
                    )
                state.tick()
                chunks.append(chunk)
        finally:
            stream.close()
        return "".join(chunks)
    finally:
        _CURRENT.reset(token)


# --------------------------------------------------------------------------
# sizes
# --------------------------------------------------------------------------


_TEXT = (str, bytes, range)
_SEQUENCES = (list, tuple, set, frozenset)
_SCALARS = (int, float, bool, type(None))


def size(value: Any, cap: int) -> int:
    """The deep size of ``value``, counted up to just past ``cap``: characters of text, items
    of lists, tuples, sets, ranges and mappings plus the sizes of what they hold, 1 for
    anything else. Shared parts count each time they occur, as printing them would."""
    total = 0
    stack = [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, _TEXT):
            total += len(item)
        elif isinstance(item, _SEQUENCES):
            total += len(item)
            if total <= cap:  # scalars count as their item; only what holds more is opened
                stack.extend(x for x in item if not isinstance(x, _SCALARS))
        elif isinstance(item, _SCALARS):
            total += 1
        elif isinstance(item, Mapping):
            total += len(item)
            if total <= cap:
                stack.extend(k for k in item if not isinstance(k, _SCALARS))
                stack.extend(v for v in item.values() if not isinstance(v, _SCALARS))
        else:
            total += 1
    return total


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 3


def _short(value: Any) -> str:
    """A short repr for messages (of a value of any size or depth)."""
    return _REPR.repr(value)


def _too_big(limits: Limits, what: str, amount: int | float) -> TemplateLimit:
    return TemplateLimit(
        f"{what} would build {amount:,.0f} characters or items, more than "
        f"template_max_output ({limits.max_output:,})",
        "template_max_output",
    )


def checked(value: Any, limits: Limits, *, charge: bool = True) -> Any:
    """``value`` if it is within the size limits (and counted against the total)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_NUMBER_BITS:
            raise TemplateLimit(
                f"it computed a number of {value.bit_length():,} bits, more than "
                f"{MAX_NUMBER_BITS:,}",
                fix=NUMBERS,
            )
        return value
    amount = size(value, limits.max_output)
    if amount > limits.max_output:
        raise TemplateLimit(
            f"it built a text or list of more than {limits.max_output:,} characters or items "
            f"(template_max_output): {_short(value)}",
            "template_max_output",
        )
    if charge:
        _charge(amount)
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_binop(limits: Limits, operator: str, left: Any, right: Any) -> None:
    """Refuse ``*``, ``**`` and ``%`` whose result would be too big, before computing it."""
    if operator == "*":
        if _whole(left) and _whole(right):
            bits = left.bit_length() + right.bit_length()
            if bits > MAX_NUMBER_BITS:
                raise TemplateLimit(
                    f"{_short(left)} * {_short(right)} would be a number of about {bits:,} bits, "
                    f"more than {MAX_NUMBER_BITS:,}",
                    fix=NUMBERS,
                )
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | list | tuple) and _whole(times) and times > 1:
                amount = size(seq, limits.max_output) * times
                if amount > limits.max_output:
                    raise _too_big(limits, f"{_short(seq)} * {times:,}", amount)
    elif operator == "**":
        if _whole(left) and _whole(right) and right > 0 and abs(left) > 1:
            bits = right * math.log2(abs(left))
            if bits > MAX_NUMBER_BITS:
                raise TemplateLimit(
                    f"{_short(left)} ** {_short(right)} would be a number of about {bits:,.0f} "
                    f"bits, more than {MAX_NUMBER_BITS:,}",
                    fix=NUMBERS,
                )
    elif operator == "%" and isinstance(left, str):
        check_percent_format(limits, left)


_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _width(limits: Limits, number: str | int, where: str) -> None:
    if isinstance(number, str):
        if number == "*":
            raise TemplateLimit(
                f"{where}: a width or precision taken from the arguments ('*') is not allowed "
                "in templates",
                fix=WRITE_WIDTH,
            )
        if len(number) > 15:
            raise _too_big(limits, f"{where}: a width of {len(number)} digits", 10.0 ** len(number))
        number = int(number)
    if number > limits.max_output:
        raise _too_big(limits, f"{where}: a width of {number:,}", number)


def check_percent_format(limits: Limits, fmt: str) -> None:
    """Refuse ``%`` formatting whose widths or precisions are too big (``'%9999999999d'``)."""
    for match in _PERCENT.finditer(fmt):
        for number in match.groups():
            if number is not None:
                _width(limits, number, f"format {match.group(0)[:20]!r}")


def check_brace_format(limits: Limits, fmt: str) -> None:
    """Refuse ``str.format`` specs with too big widths (``'{:>9999999999}'``) or nested fields."""
    try:
        parts = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # not a format string: format() itself refuses it
    for _literal, _field, spec, _conversion in parts:
        if not spec:
            continue
        if "{" in spec:
            raise TemplateLimit(
                f"format spec {spec[:20]!r}: fields inside a format spec are not allowed in "
                "templates",
                fix=WRITE_WIDTH,
            )
        for number in re.findall(r"\d+", spec):
            _width(limits, number, f"format spec {spec[:20]!r}")


# --------------------------------------------------------------------------
# methods of text (and of lists and mappings, which may grow)
# --------------------------------------------------------------------------


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str,
         default: Any = None) -> Any:  # fmt: skip
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _replace_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, type(text)) or not isinstance(new, type(text)):
        return len(text)  # refused by replace itself
    found = text.count(old)
    if _whole(count) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def check_text_method(
    limits: Limits, owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Refuse a call of a text method that would build too much; ``args`` to call it with
    (an iterable given to ``join`` is read once, here)."""
    where = f"{_short(owner)}.{name}()"
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _arg(args, kwargs, 0, "width")
        if _whole(width):
            _width(limits, width, where)
    elif name == "expandtabs":
        tabsize = _arg(args, kwargs, 0, "tabsize", 8)
        tab = "\t" if isinstance(owner, str) else b"\t"
        if _whole(tabsize) and owner.count(tab) * tabsize > limits.max_output:  # type: ignore[arg-type]
            raise _too_big(limits, where, owner.count(tab) * tabsize)  # type: ignore[arg-type]
    elif name == "replace" and len(args) >= 2:
        amount = _replace_size(owner, args[0], args[1], _arg(args, kwargs, 2, "count", -1))
        if amount > limits.max_output:
            raise _too_big(limits, where, amount)
    elif name == "join" and args:
        items = list(args[0])
        amount = len(owner) * max(len(items) - 1, 0) + size(items, limits.max_output)
        if amount > limits.max_output:
            raise _too_big(limits, where, amount)
        return (items, *args[1:])
    elif name in ("format", "format_map") and isinstance(owner, str):
        check_brace_format(limits, owner)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        if len(owner) * longest > limits.max_output:
            raise _too_big(limits, where, len(owner) * longest)
    return args


# --------------------------------------------------------------------------
# filters: every filter checked for time and size; those whose size comes from a number,
# before they run
# --------------------------------------------------------------------------


class _FilterChecks:
    """Checks run before a filter, with the filter's arguments (after context/environment)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def by_name(self) -> dict[str, Callable[..., None]]:
        return {"center": self.center, "indent": self.indent, "format": self.format,
                "replace": self.replace, "batch": self.batch, "slice": self.slice,
                "wordwrap": self.wordwrap, "tojson": self.tojson, "round": self.round}  # fmt: skip

    def center(self, value: Any, width: Any = 80) -> None:
        if _whole(width):
            _width(self.limits, width, f"center({width})")

    def indent(self, s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
        per_line = width if _whole(width) else len(str(width))
        lines = str(s).count("\n") + 1
        if per_line * lines > self.limits.max_output:
            raise _too_big(self.limits, f"indent({_short(width)}) of {lines:,} lines",
                           per_line * lines)  # fmt: skip

    def format(self, value: Any, *args: Any, **kwargs: Any) -> None:
        check_percent_format(self.limits, str(value))

    def replace(self, s: Any, old: Any, new: Any, count: Any = None) -> None:
        amount = _replace_size(str(s), str(old), str(new), -1 if count is None else count)
        if amount > self.limits.max_output:
            raise _too_big(self.limits, "replace", amount)

    def batch(self, value: Any, linecount: Any, fill_with: Any = None) -> None:
        if fill_with is not None and _whole(linecount):
            _width(self.limits, linecount, f"batch({linecount}, ...)")

    def slice(self, value: Any, slices: Any, fill_with: Any = None) -> None:
        if _whole(slices):
            _width(self.limits, slices, f"slice({slices})")

    def wordwrap(self, s: Any, width: Any = 79, break_long_words: bool = True,
                 wrapstring: Any = None, break_on_hyphens: bool = True) -> None:  # fmt: skip
        if wrapstring is not None and _whole(width):
            text = str(s)
            lines = len(text) // max(width, 1) + text.count("\n") + 1
            if lines * len(str(wrapstring)) > self.limits.max_output:
                raise _too_big(self.limits, "wordwrap", lines * len(str(wrapstring)))

    def round(self, value: Any, precision: Any = 0, method: str = "common") -> None:
        # rounding computes 10 ** precision (floor and ceil; a whole number to -n places)
        if _whole(precision) and abs(precision) * math.log2(10) > MAX_NUMBER_BITS:
            raise TemplateLimit(
                f"round({_short(value)}, {precision}) would compute 10 ** {abs(precision):,}, "
                f"a number of more than {MAX_NUMBER_BITS:,} bits",
                fix=NUMBERS,
            )

    def tojson(self, value: Any, indent: Any = None) -> None:
        if _whole(indent):
            amount = indent * size(value, self.limits.max_output)
            if amount > self.limits.max_output:
                raise _too_big(self.limits, f"tojson({indent})", amount)


def _guard_filter(
    limits: Limits, func: Callable[..., Any], before: Callable[..., None] | None
) -> Callable[..., Any]:
    """``func`` checking the deadline, ``before`` (with the filter's own arguments) and the
    size of what it returns. Keeps Jinja2's context/environment marker (``functools.wraps``)."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if before is not None:
            before(*args[skip:], **kwargs)
        return checked(func(*args, **kwargs), limits)

    return guarded


def _join(limits: Limits, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> Any:
        _tick()
        items = list(value)
        amount = len(str(d)) * max(len(items) - 1, 0) + size(items, limits.max_output)
        if amount > limits.max_output:
            raise _too_big(limits, "join", amount)
        return checked(original(eval_ctx, items, d, attribute), limits)

    return join


def _sum(limits: Limits) -> Callable[..., Any]:
    @pass_environment
    def do_sum(environment: Any, iterable: Iterable[Any], attribute: Any = None,
               start: Any = 0) -> Any:  # fmt: skip
        """Jinja2's ``sum``, adding one item at a time, each sum checked (text and lists
        added up grow, and Python's sum would copy them without a check)."""
        _tick()
        items: Iterable[Any] = iterable
        if attribute is not None:
            items = map(make_attrgetter(environment, attribute), items)
        if isinstance(start, str | bytes):
            return sum(items, start)  # Python refuses it, with its message
        total = start
        amount = size(total, limits.max_output)
        for item in items:
            _tick()
            if isinstance(total, Number) and isinstance(item, Number):
                total = checked(total + item, limits)
                continue
            # each sum is as big as the last plus the item: counted so, not measured again
            amount += size(item, limits.max_output)
            if amount > limits.max_output:
                raise _too_big(limits, "sum", amount)
            total = total + item
            _charge(amount)
        return total

    return do_sum


# --------------------------------------------------------------------------
# the hooks the parse tree gets: loops counted, built values and output checked
# --------------------------------------------------------------------------


class _Counted:
    """An iterable whose every item counts as a loop iteration (``len`` as the original's)."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Any) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        render = _CURRENT.get()
        for item in self._iterable:
            if render is not None:
                render.iterate()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)  # a TypeError for an iterator: LoopContext then counts


def _hooks(limits: Limits) -> dict[str, Callable[..., Any]]:
    # pass_context, so that Jinja2 never folds them into constants at compile time
    @pass_context
    def loop(context: Context, iterable: Any) -> _Counted:
        return _Counted(iterable)

    @pass_context
    def built(context: Context, value: Any) -> Any:
        _tick()
        return checked(value, limits)

    @pass_context
    def concat(context: Context, items: list[Any]) -> Any:
        _tick()
        joined = markup_join(items) if context.eval_ctx.autoescape else str_join(items)
        return checked(joined, limits)

    @pass_context
    def output(context: Context, value: Any) -> Any:
        render = _CURRENT.get()
        if render is not None:
            render.tick()
            render.charge(size(value, limits.max_output))
        return value

    return {LOOP: loop, BUILT: built, CONCAT: concat, OUTPUT: output}


def _hook(name: str, node: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Bounder(NodeTransformer):
    """Puts the hooks into a parsed template (see the module's docstring)."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = _hook(LOOP, node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _hook(CONCAT, nodes.List(node.nodes, lineno=node.lineno))

    def _literal(self, node: nodes.List | nodes.Tuple | nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # an assignment target: {% for a, b in ... %}
        return _hook(BUILT, node)

    visit_List = visit_Tuple = visit_Dict = _literal  # noqa: N815 - visitor names

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        node.nodes = [
            _hook(OUTPUT, nodes.MarkSafe(nodes.Const(child.data), lineno=child.lineno))
            if isinstance(child, nodes.TemplateData)
            else _hook(OUTPUT, child)
            for child in node.nodes
        ]
        return node


def bound(tree: nodes.Template) -> nodes.Template:
    """``tree`` with the hooks in (changed in place)."""
    _Bounder().visit(tree)
    return tree


# --------------------------------------------------------------------------
# the environment
# --------------------------------------------------------------------------


class BoundedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox with the limits of ``limits`` (see the module's docstring).

    Compile templates with :meth:`compile_bounded` (the hooks go into the parse tree)
    and render them with :func:`render_bounded`.
    """

    intercepted_binops = frozenset(("*", "**", "+", "%"))

    def __init__(self, limits: Limits, **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits
        self._generate_lipsum = self.globals["lipsum"]
        self.globals["range"] = self._range
        self.globals["lipsum"] = self._lipsum
        checks = _FilterChecks(limits).by_name()
        filters = {
            name: _guard_filter(limits, f, checks.get(name)) for name, f in self.filters.items()
        }
        filters["join"] = _join(limits, self.filters["join"])
        filters["sum"] = _sum(limits)
        filters.update(_hooks(limits))
        self.filters = filters

    def compile_bounded(self, tree: nodes.Template) -> Any:
        """A template from a parse tree (``env.parse(body)``), with the hooks put in."""
        return self.from_string(bound(tree))

    def _range(self, *args: Any) -> range:
        numbers = range(*args)
        if len(numbers) > self.limits.max_range:
            raise TemplateLimit(
                f"range({', '.join(map(_short, args))}) has {len(numbers):,} numbers, more than "
                "template_max_range "
                f"({self.limits.max_range:,})",
                "template_max_range",
            )
        return numbers

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:  # noqa: A002 - Jinja2's names
        if _whole(n) and _whole(max) and n * max * 12 > self.limits.max_output:
            raise _too_big(self.limits, f"lipsum({n}, max={max})", n * max * 12)
        return self._generate_lipsum(n, html, min, max)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2 wraps ``str.format`` when it is read (not called): the format string's
        widths are checked there."""
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:
            check_brace_format(self.limits, value.__self__)
        return wrapper

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str | bytes):
            args = check_text_method(self.limits, owner, getattr(obj, "__name__", ""), args, kwargs)
        elif _whole(owner) and getattr(obj, "__name__", "") == "to_bytes":
            length = _arg(args, kwargs, 0, "length", 1)
            if _whole(length):
                _width(self.limits, length, f"{_short(owner)}.to_bytes()")
        elif isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop
            args = (_Counted(args[0]), *args[1:])
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(owner, list | dict | set):  # append, extend, update ... grow their owner
            checked(owner, self.limits, charge=False)
        return checked(result, self.limits)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        check_binop(self.limits, operator, left, right)
        return checked(super().call_binop(context, operator, left, right), self.limits)
