"""The send functions: compiled for each signal and set of argument names, and the slow path
they share.

A send is the hottest code in tocsin, and most signals have zero to three receivers, so its
fixed cost matters as much as its cost per receiver. Calling ``receiver(**named)`` makes
CPython unpack a dict on every call; ``receiver(signal=signal, sender=sender, order=order)``,
with the keywords spelled out, does not. And a ``send(sender, **named)`` method packs the
keywords into a dict only for the loop to unpack them again. So the first time a signal is
sent, it gets a ``send`` of its own, compiled for the names it was sent with (keyword-only
parameters, and a catch-all for other names), stored on the instance, where
``signal.send(...)`` finds it before the class's method. ``send_robust`` likewise.

That function calls every sync receiver from its own frame, whatever path the send takes
(the first send after a change, a sender with receivers of its own, names it was not
compiled for): exactly one frame, the send's, stands between the caller and a receiver, as
in django.dispatch, so code tuned to that depth (``warnings.warn(..., stacklevel=N)`` in a
receiver) points at the right line. (Async receivers run in tasks, through
``tocsin._asyncio``.) The generated source is registered in ``linecache`` so tracebacks and
debuggers show it.

Receivers get the keywords in the order of the names the function was compiled for (the
order of the signal's first send), then any others in the order they were passed.

The class's own ``Signal.send``/``send_robust`` are generated from the same template with no
names compiled in: they serve code that calls ``Signal.send(signal, ...)`` unbound, and
subclasses that override ``send`` and call ``super().send(...)``; on a first call they also
install the compiled function, unless a subclass overrides the method.
"""

from __future__ import annotations

import contextlib
import inspect
import keyword
import linecache
import logging
import sys
import unicodedata
from collections.abc import Callable, Mapping
from operator import call
from typing import TYPE_CHECKING, Any

from tocsin import _asyncio
from tocsin._plan import STALE, Route
from tocsin._references import describe_receiver, safe_str

if TYPE_CHECKING:
    from tocsin._ledger import Ledger
    from tocsin.dispatcher import Signal

Responses = list[tuple[Callable[..., Any], Any]]
SendFunction = Callable[..., Responses]

_logger = logging.getLogger("tocsin")

# Bounds the cache of compiled factories for programs that send with ever-new names; past
# it, signals get the function compiled for no names (correct, just not spelled out), whose
# four variants are always let in.
_MAX_COMPILED = 256
# More names than this are not worth spelling out: such a send is dominated by its receivers.
_MAX_NAMES = 32


class _Missing:
    """The default of every compiled parameter: "not passed"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not passed>"


MISSING: Any = _Missing()


def log_robust_failure(signal: object, receiver: object, error: BaseException) -> None:
    """Log one receiver's failure in a robust send, as django.dispatch words it.

    Never raises: a receiver whose ``__repr__`` fails, an exception whose ``__str__`` fails,
    a broken handler... a robust send goes on to the next receiver whatever happens here.
    """
    with contextlib.suppress(Exception):
        _logger.error(
            "Error calling %s in Signal.send_robust() (%s)",
            describe_receiver(receiver),
            safe_str(error),
            exc_info=error,
        )


def prelude(
    signal: Signal, ledger: Ledger, sender: object, named: dict[str, Any], method: str
) -> Route | None:
    """What a send does before calling anyone, when the compiled loop cannot go straight on.

    Publishes the plan if it is stale, refuses an argument named ``signal``, checks the
    arguments in strict mode, tells the observers, and returns the route for ``sender``, or
    None when the signal is muted (the send then calls nobody).
    """
    plan = ledger.current()
    if "signal" in named:
        # Every receiver would fail with "multiple values for 'signal'": fail once, before
        # anyone runs, and say why.
        raise TypeError(
            f"{signal!r} was sent with an argument named 'signal'; every receiver already "
            "gets the signal under that name, so pick another name"
        )
    if plan.strict:
        signal.check_arguments(named, method)
    for observer in plan.observers:
        observer(signal, sender, named, method)
    if plan.muted:
        return None
    return plan.route(sender)


def compilable(name: str) -> bool:
    """Whether an argument name can be a parameter of a compiled send and reach receivers as
    passed: an identifier, not a keyword, not one Python would normalise (NFKC turns "µ"
    into "μ", "ﬁ" into "fi"), not dunder, not ``signal`` or ``sender``. Other names travel
    through the catch-all and still reach receivers exactly as passed."""
    return (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and unicodedata.normalize("NFKC", name) == name
        and not name.startswith("__")
        and name not in ("signal", "sender")
    )


# -- the template ---------------------------------------------------------------------------

# Most signals have a few receivers: for up to _MOST_UNROLLED of them, send resolves them
# into locals and returns a list display, the cheapest shape there is: no list of resolved
# receivers, no loop, no append (send_robust: a try per receiver, which costs nothing until
# one raises). Only when one of them has died does it fall through to the loop. Measured side
# by side against the hand-written loop on CPython 3.11: at 10 receivers, the loop resolving
# first costs 1.24x, the unrolled shape 1.17x; at 100, 1.17x and 1.10x. The source grows with
# the square of the largest shape (a name set's send compiles in 0.5 ms up to 5 receivers,
# 1.5 ms up to 12), so past _MOST_UNROLLED a send gets one more shape, for the number of
# receivers its signal had for any sender at its first send (the number a signal wired at
# start-up keeps), up to _LARGEST_SHAPE (3 ms to compile at 100, 6 ms for send_robust). The
# class's own Signal.send, compiled at import and used only unbound or through super(), stops
# at _FEW.
_FEW = 5
_MOST_UNROLLED = 12
_LARGEST_SHAPE = 128

# Placeholders in {braces} are the function's own names; each is renamed (by appending "_")
# if a compiled argument happens to share it, so no argument can shadow them.
_OWN_NAMES = (
    "signal",
    "STALE",
    "count",
    "get",
    "id",
    "ledger",
    "plan",
    "refs",
    "named",
    "route",
    "receivers",
    "waiting",
    "responses",
    "receiver",
    "error",
    "other",
    "MISSING",
    "call",
    "prelude",
    "run_async",
    "log",
    "Exception",
    "len",
    "map",
    "install",
    "self",
)

_HEAD_INSTANCE = """\
def make({signal}, {ledger}):
    def {method}(sender{params}, **{other}):
{body}
    return {method}
"""

_HEAD_CLASS = """\
def {method}({self}, /, sender, **{other}):
    {signal} = {self}
    {ledger} = {self}._ledger
    {install}({signal}, {ledger}, {method!r}, {other})
{body}
"""

_BODY = """\
{plan} = {ledger}.plan
if {plan} is None:
    if not {other}:
        return []
    {plan} = {STALE}  # names to check (such as 'signal'): every send is judged alike
{refs} = {plan}.fast
if {refs} is None:
    # A sender's own route, looked up by id() as sender_key() files it (see Plan.pick).
    {route} = {plan}.by_id({id}(sender))
    if {route} is not None and {route}.guard() is sender:
        {refs} = {route}.fast
    else:
        {refs} = {plan}.pick(sender)
if {refs} is None or {other}{missing}{strict}:
{collect}    {route} = {prelude}({signal}, {ledger}, sender, {named}, {method!r})
    if {route} is None:
        return []
    if {other}{missing} or {route}.asynchronous:
        {receivers} = {resolve_sync}
        {waiting} = {resolve_async}
        {responses} = []
        for {receiver} in {receivers}:
            if {receiver} is not None:
{generic_call}
        if {waiting}:
            {responses} += {run_async}({signal}, {waiting}, sender, {named}, {robust}, {log})
        return {responses}
    {refs} = {route}.sync
{count} = {len}({refs})
if {count} <= {few}:
    if {count} == 1:
        {receiver} = {refs}[0]()
        if {receiver} is None:
            return []
{single_call}
{unrolled}{general}
"""


_UNROLLED = """\
{resolved}
if {alive}:
{calls}    return [{pairs}]
"""

_TRY = """\
    try:
        {result} = {callee}({arguments})
    except {Exception} as {error}:
        {log}({signal}, {callee}, {error})
        {result} = {error}
"""

_APPEND = "{responses}.append(({receiver}, {receiver}({arguments})))"

_CALL_PLAIN = "{indent}" + _APPEND

_CALL_ROBUST = (
    """\
{indent}try:
{indent}    """
    + _APPEND
    + """
{indent}except {Exception} as {error}:
{indent}    {log}({signal}, {receiver}, {error})
{indent}    {responses}.append(({receiver}, {error}))"""
)

_SINGLE_PLAIN = "        return [({receiver}, {receiver}({arguments}))]"

_SINGLE_ROBUST = """\
        try:
            return [({receiver}, {receiver}({arguments}))]
        except {Exception} as {error}:
            {log}({signal}, {receiver}, {error})
            return [({receiver}, {error})]"""


def _own_names(names: tuple[str, ...], shape: int = 0) -> dict[str, str]:
    """Each of the function's own names, renamed away from the compiled argument names: the
    fixed ones, then the unrolled shapes' locals (``receiver0``, ``response0``...)."""
    taken = set(names)
    own = {}
    largest = max(_MOST_UNROLLED, shape)
    numbered = [f"{stem}{index}" for stem in ("receiver", "response") for index in range(largest)]
    for name in (*_OWN_NAMES, *numbered):
        spelled = name
        while spelled in taken:
            spelled += "_"
        own[name] = spelled
        taken.add(spelled)
    return own


def _source(
    method: str, names: tuple[str, ...], strict: bool, for_class: bool, shape: int = 0
) -> str:
    """The source of a send function; see the module docstring. ``shape``, past
    _MOST_UNROLLED, is one more number of receivers to unroll."""
    own = _own_names(names, shape)
    if for_class:
        own["other"] = own["named"]  # the signature reads (self, /, sender, **named)
    robust = method == "send_robust"
    spelled = ", ".join([f"signal={own['signal']}", "sender=sender", *(f"{n}={n}" for n in names)])
    generic = f"signal={own['signal']}, sender=sender, **{own['named']}"
    call_template = _CALL_ROBUST if robust else _CALL_PLAIN
    single_template = _SINGLE_ROBUST if robust else _SINGLE_PLAIN
    if names:
        collect = f"    {own['named']} = {{}}\n" + "".join(
            f"    if {n} is not {own['MISSING']}:\n        {own['named']}[{n!r}] = {n}\n"
            for n in names
        )
        collect += f"    {own['named']}.update({own['other']})\n"
    elif for_class:
        collect = ""  # the catch-all is the signature's **named, a fresh dict already
    else:
        collect = f"    {own['named']} = {own['other']}\n"  # this very call's own dict
    body = _BODY.format(
        **own,
        method=method,
        missing="".join(f" or {n} is {own['MISSING']}" for n in names),
        strict=f" or {own['plan']}.strict" if strict else "",
        collect=collect,
        robust=robust,
        resolve_sync=_resolve(own, f"{own['route']}.sync"),
        resolve_async=_resolve(own, f"{own['route']}.asynchronous"),
        few=_FEW,
        unrolled=_unrolled(
            own, spelled, robust, _FEW if for_class else _MOST_UNROLLED, 0 if for_class else shape
        ),
        general=_general(own, spelled, call_template),
        generic_call=call_template.format(**own, indent=" " * 16, arguments=generic),
        single_call=single_template.format(**own, arguments=spelled),
    )
    if for_class:
        # The catch-all is the signature's **named, as in django.dispatch.
        return _HEAD_CLASS.format(**own, method=method, body=_indent(body, 4))
    params = ", *, " + ", ".join(f"{n}={own['MISSING']}" for n in names) if names else ""
    return _HEAD_INSTANCE.format(**own, method=method, params=params, body=_indent(body, 8))


def _resolve(own: dict[str, str], getters: str) -> str:
    """An expression resolving every getter into a list (None for a dead receiver): held
    there, every receiver alive when the send started lives until the send is over."""
    if sys.version_info >= (3, 12):  # comprehensions are inlined (PEP 709): no extra frame
        return f"[{own['get']}() for {own['get']} in {getters}]"
    return f"[*{own['map']}({own['call']}, {getters})]"


def _general(own: dict[str, str], spelled: str, call_template: str) -> str:
    """The loop for any number of receivers."""
    if sys.version_info >= (3, 12) and call_template is _CALL_PLAIN:
        # An inlined comprehension appends with LIST_APPEND, not a method call, and adds no
        # frame: every receiver is still called from the send's own.
        r = own["receiver"]
        return (
            f"return [({r}, {r}({spelled})) for {r} in {_resolve(own, own['refs'])}"
            f" if {r} is not None]"
        )
    return (
        f"{own['responses']} = []\n"
        f"for {own['receiver']} in {_resolve(own, own['refs'])}:\n"
        f"    if {own['receiver']} is not None:\n"
        + call_template.format(**own, indent=" " * 8, arguments=spelled)
        + f"\nreturn {own['responses']}"
    )


def _unrolled(own: dict[str, str], spelled: str, robust: bool, most: int, shape: int) -> str:
    """The shapes for 2 to ``most`` receivers, and for ``shape``: those up to _FEW inside the
    test for a few (with the shape for one), the others behind further tests, so that a send
    with few receivers makes few comparisons."""
    count = own["count"]
    text = ""
    for size in range(2, most + 1):
        if size == _FEW + 1:
            text += f"elif {count} <= {most}:\n"
        text += f"    if {count} == {size}:\n" + _indent(_shape(own, spelled, robust, size), 8)
    if shape > most:
        text += f"elif {count} == {shape}:\n" + _indent(_shape(own, spelled, robust, shape), 4)
    return text


def _shape(own: dict[str, str], spelled: str, robust: bool, size: int) -> str:
    """Resolve ``size`` receivers into locals and, when all are alive, call them and return."""
    local = [own[f"receiver{index}"] for index in range(size)]
    results = [own[f"response{index}"] for index in range(size)]
    if robust:
        calls = "".join(
            _TRY.format(**own, callee=r, result=x, arguments=spelled)
            for r, x in zip(local, results, strict=True)
        )
        pairs = ", ".join(f"({r}, {x})" for r, x in zip(local, results, strict=True))
    else:
        calls = ""
        pairs = ", ".join(f"({r}, {r}({spelled}))" for r in local)
    return _UNROLLED.format(
        resolved="; ".join(f"{r} = {own['refs']}[{i}]()" for i, r in enumerate(local)),
        alive=" and ".join(f"{r} is not None" for r in local),
        calls=calls,
        pairs=pairs,
    )


def _indent(text: str, width: int) -> str:
    pad = " " * width
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def _globals(names: tuple[str, ...]) -> dict[str, Any]:
    own = _own_names(names)
    helpers: dict[str, Any] = {
        "MISSING": MISSING,
        "STALE": STALE,
        "call": call,
        "prelude": prelude,
        "run_async": _asyncio.send_async_group,
        "log": log_robust_failure,
        "Exception": Exception,
        "len": len,
        "map": map,
        "id": id,
        "install": install,
    }
    return {own[name]: value for name, value in helpers.items()}


def _exec(source: str, filename: str, names: tuple[str, ...], entry: str) -> Any:
    """Compile ``source``, register it with linecache (so tracebacks and pdb show the lines,
    as attrs does for the code it generates), and return its function ``entry``."""
    namespace = _globals(names)
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return namespace[entry]


def _filename(method: str, names: tuple[str, ...], strict: bool, shape: int) -> str:
    checked = ", checked" if strict else ""
    unrolled = f", {shape} unrolled" if shape else ""
    return f"<tocsin {method}({', '.join(names)}){checked}{unrolled}>"


Factory = Callable[["Signal", "Ledger"], SendFunction]

_factories: dict[tuple[str, tuple[str, ...], bool, int], Factory] = {}


def _factory(method: str, names: tuple[str, ...], strict: bool, shape: int) -> Factory:
    """The (cached) function that makes a signal's compiled ``method`` for these names (and
    one more unrolled ``shape``, or 0)."""
    key = (method, names, strict, shape)
    factory = _factories.get(key)
    if factory is None:
        if len(_factories) >= _MAX_COMPILED and (names or shape):
            return _factory(method, (), True, 0)  # the cache is full: nothing compiled in
        source = _source(method, names, strict, for_class=False, shape=shape)
        factory = _exec(source, _filename(*key), names, "make")
        _factories[key] = factory
    return factory


# -- installing a signal's own send ---------------------------------------------------------

_SIGNATURE = inspect.Signature(
    [
        inspect.Parameter("sender", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("named", inspect.Parameter.VAR_KEYWORD, annotation=Any),
    ],
    return_annotation=Responses,
)


def install(signal: Signal, ledger: Ledger, method: str, named: Mapping[str, Any]) -> None:
    """Give ``signal`` its own compiled ``method``, for the names of this first send (and,
    past the shapes every send has, for the number of receivers it has for any sender).

    Nothing is installed when the signal has one already (or a test patched it), or when a
    subclass overrides the method (its override must keep running).
    """
    if method in signal.__dict__ or getattr(type(signal), method) is not CLASS_METHODS[method]:
        return
    names = tuple(name for name in named if compilable(name))[:_MAX_NAMES]
    try:
        signal.check_arguments({name: named[name] for name in names}, method)
    except Exception:
        strict = True  # names that fail the check: a strict plan must check every send
    else:
        strict = False
    shape = ledger.anyone_sync_count()
    if not _MOST_UNROLLED < shape <= _LARGEST_SHAPE:
        shape = 0
    function = _factory(method, names, strict, shape)(signal, ledger)
    function.__qualname__ = f"{type(signal).__qualname__}.{method}"
    function.__doc__ = CLASS_METHODS[method].__doc__
    function.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
    signal.__dict__[method] = function


def _class_method(method: str, doc: str) -> SendFunction:
    # No names are compiled in, and no check was made: a strict plan must check every send.
    source = _source(method, (), True, for_class=True)
    function: SendFunction = _exec(source, f"<tocsin Signal.{method}>", (), method)
    function.__doc__ = doc
    function.__qualname__ = f"Signal.{method}"
    function.__module__ = "tocsin.dispatcher"
    return function


send = _class_method(
    "send",
    """Call every receiver for ``sender`` with ``named``; return (receiver, response) pairs.

    Receivers are called in connection order (sync ones first, then async ones; see
    docs/async.md), each with ``signal=``, ``sender=`` and the named arguments. The first
    exception raised by a sync receiver propagates and stops the send. Async receivers run
    after the sync ones, concurrently: one failing raises its exception, several raise an
    ``ExceptionGroup``.
    """,
)

send_robust = _class_method(
    "send_robust",
    """Like ``send``, but an ``Exception`` from a receiver becomes its response.

    Each failure is logged at ERROR on the ``"tocsin"`` logger; the other receivers still
    run. ``KeyboardInterrupt`` and ``SystemExit`` are not caught.
    """,
)

CLASS_METHODS: dict[str, SendFunction] = {"send": send, "send_robust": send_robust}


def generated_files() -> list[str]:
    """The linecache names of every send function compiled so far (for tests)."""
    return [_filename(*key) for key in _factories] + [
        f"<tocsin Signal.{method}>" for method in CLASS_METHODS
    ]
