# ruff: noqa: UP031  (%-formatting on purpose: it is the fastest in the hot loop)
# mypy: ignore-errors
# (Runs alone under the system python; kept small and untyped on purpose.)
"""Runs one candidate inside the sandbox and reports what it returned, never whether it passed.

This file is executed by the system interpreter as ``python3 -I -S child.py`` under an
unprivileged uid, so it must stay standard-library only and must not import ``codal_bench``.
Everything here runs in the same process as untrusted code: nothing it writes is trusted by the
parent beyond "these bytes came out". Expected outputs never enter this process, so forging a
pass would require actually computing the right answers.

Request (marshal objects on stdin; the parent is trusted and `json` would cost an import of
`re`, as `signal` would of `enum` -- start-up time is most of a small task's cost)::

    {"code": str, "entry": str, "mode": "digest" | "values" | "prepare",
     "force_values": bool, "load_cpu": s, "n_groups": n}
    then per group the inputs [[arg, ...], ...] and {"cpu": [s, ...], "wall": [s, ...], "budget": s}
    (prepare mode may send several problems in a row; replies then start with ``["P", k]``)

Reply: one JSON array per line on the original stdout (user prints go to /dev/null):
``["R", g, i, payload]`` an output, a digest or a typed value (prepare mode adds its CPU seconds
and `is_floats`), ``["X", g, i, msg]`` an exception, ``["T", g, i]`` a per-input time limit,
``["V", g, i, typed]`` (prepare only), ``["G", g]`` group finished, ``["D"]`` done. A group
stops at its first exception or timeout;
``g == -1`` means loading the code failed, which fails every group at its first input.
"""

import _signal
import io
import marshal
import os
import sys
import time
from _blake2 import blake2b
from _struct import error as StructError
from _struct import pack, unpack

_BIG = 1 << 53
_INTS = {int, bool}
_STR = {str}
_NUMS = {int, bool, float}


_NEG_ZERO = pack("<d", -0.0)


class _Timeout(BaseException):
    """Raised from the timer handlers; BaseException so that `except Exception` cannot eat it."""


def canon(x, parts):
    """Append an encoding whose equality matches Python `==` between builtin values."""
    t = type(x)
    if t is str:
        parts.append("s%d:" % len(x))
        parts.append(x)
    elif t is int or t is bool:
        parts.append("i%x" % x)
    elif t is float:
        if x != x:
            parts.append("n" + os.urandom(8).hex())  # nan equals nothing
        elif x.is_integer():
            parts.append("i%x" % int(x))
        else:
            parts.append("f" + float.__repr__(x))
    elif t is list or t is tuple:
        parts.append("L%d[" % len(x) if t is list else "T%d[" % len(x))
        kinds = set(map(type, x))
        raw = None
        if kinds <= _NUMS and x:
            fmt = "<%dd" % len(x)
            try:
                raw = pack(fmt, *x)
            except (OverflowError, StructError):  # an int beyond any double
                pass
        if raw is not None and unpack(fmt, raw) == (x if t is tuple else tuple(x)):
            # Python compares int and float exactly, so the doubles equal the values (no int
            # was rounded) and there is no nan (nan != nan); with -0.0 made 0.0, equal lists give
            # equal bytes, and which branch a list takes depends only on its values.
            k = raw.find(_NEG_ZERO)
            if k >= 0:
                fixed = bytearray(raw)
                while k >= 0:
                    if k % 8 == 0:
                        fixed[k : k + 8] = bytes(8)
                    k = raw.find(_NEG_ZERO, k + 1)
                raw = bytes(fixed)
            parts[-1] = ("N%d[" if t is list else "M%d[") % len(x)
            parts.append(raw)
        elif kinds <= _INTS:  # byte-identical to the loop below
            parts.append("".join(map("i%x,".__mod__, x)))
        elif kinds == _STR:
            parts.append("".join(map("s%d:%s,".__mod__, zip(map(len, x), x, strict=False))))
        else:
            ap = parts.append
            for e in x:
                te = type(e)
                if te is int:
                    ap("i%x," % e)
                elif te is float and e == e:
                    ap("i%x," % int(e) if e.is_integer() else "f%r," % e)
                else:
                    canon(e, parts)
                    ap(",")
        parts.append("]")
    elif x is None:
        parts.append("N")
    elif isinstance(x, bool):
        parts.append("i%x" % int(x))
    elif isinstance(x, int):
        parts.append("i%x" % int.__index__(x))
    elif isinstance(x, float):
        canon(float.__float__(x), parts)
    elif isinstance(x, str):
        canon(str.__str__(x), parts)
    elif isinstance(x, list):
        canon([e for e in list.__iter__(x)], parts)
    elif isinstance(x, tuple):
        canon(tuple(e for e in tuple.__iter__(x)), parts)
    elif isinstance(x, dict):
        items = []
        for k, v in dict.items(x):
            kp, vp = [], []
            canon(k, kp)
            canon(v, vp)
            items.append(_flat(kp) + "=" + _flat(vp))
        items.sort()
        parts.append("D%d{" % len(items) + ",".join(items) + "}")
    elif isinstance(x, (set, frozenset)):
        elems = []
        for e in x:
            ep = []
            canon(e, ep)
            elems.append(_flat(ep))
        elems.sort()
        parts.append("S%d{" % len(elems) + ",".join(elems) + "}")
    elif isinstance(x, complex):
        if x.imag == 0:
            canon(x.real, parts)
        else:
            parts.append("c" + repr(complex(x.real, x.imag)))
    elif isinstance(x, (bytes, bytearray)):
        parts.append("b" + bytes(x).hex())
    else:
        parts.append("?" + os.urandom(8).hex())  # unknown types equal nothing


def _flat(parts):
    return "".join(p if type(p) is str else p.decode("latin-1") for p in parts)


def digest(x):
    parts = []
    canon(x, parts)
    h = blake2b(digest_size=16)
    run = []
    for p in parts:
        if type(p) is bytes:
            h.update("".join(run).encode("utf-8", "surrogatepass"))
            run.clear()
            h.update(p)
        else:
            run.append(p)
    h.update("".join(run).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def typed(x):
    """A JSON-safe encoding that keeps types (the parent rebuilds the value to compare it)."""
    if x is None or isinstance(x, bool):
        return bool(x) if x is not None else None
    if isinstance(x, int):
        v = int.__index__(x)
        return v if -_BIG < v < _BIG else ["I", "%x" % v]
    if isinstance(x, float):
        return float.__float__(x)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, list):
        return ["L"] + [typed(e) for e in list.__iter__(x)]
    if isinstance(x, tuple):
        return ["T"] + [typed(e) for e in tuple.__iter__(x)]
    if isinstance(x, dict):
        out = ["D"]
        for k, v in dict.items(x):
            out.append(typed(k))
            out.append(typed(v))
        return out
    if isinstance(x, frozenset):
        return ["F"] + [typed(e) for e in x]
    if isinstance(x, set):
        return ["S"] + [typed(e) for e in x]
    if isinstance(x, complex):
        return ["C", x.real, x.imag]
    if isinstance(x, (bytes, bytearray)):
        return ["B", bytes(x).hex()]
    return ["?", type(x).__name__[:50]]


def is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def _on_timer(signum, frame):
    raise _Timeout()


def _text(msg):
    """A JSON string literal without importing json (which drags in `re`)."""
    return '"%s"' % "".join(c if c.isalnum() or c in " .,:;_-()[]<>=+*/'" else "?" for c in msg)


def main():
    stream = io.BytesIO(sys.stdin.buffer.read())
    problems = []
    while stream.tell() < len(stream.getbuffer()):
        head = marshal.load(stream)
        groups = [(marshal.load(stream), marshal.load(stream)) for _ in range(head["n_groups"])]
        problems.append((head, groups))
    out_fd = os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)

    pending = []

    def emit(line, flush=False):
        # Batched: one write per 256 lines, at each group's end and at exit. Only a kill at the
        # backstop loses a batch, and then the verdict is a timeout anyway.
        pending.append(line)
        if flush or len(pending) >= 256:
            data = "".join(pending).encode("utf-8", "surrogatepass")
            pending.clear()
            while data:
                data = data[os.write(out_fd, data) :]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    _signal.signal(_signal.SIGPROF, _on_timer)
    _signal.signal(_signal.SIGALRM, _on_timer)
    # Several problems per sandbox only ever hold trusted canonical solutions (prepare mode).
    for k, (request, groups) in enumerate(problems):
        if len(problems) > 1:
            emit('["P",%d]\n' % k)
        run_problem(request, groups, emit)
    emit('["D"]\n', flush=True)


def run_problem(request, groups, emit):
    mode = request["mode"]
    dumps = None
    if mode == "values":
        from json import dumps
    settimer, PROF, REAL = _signal.setitimer, _signal.ITIMER_PROF, _signal.ITIMER_REAL
    clock = time.process_time
    fn = None
    try:
        namespace = {}  # like EvalPlus: no __name__, so `if __name__ == "__main__"` is skipped
        load_cpu = request["load_cpu"]
        settimer(PROF, load_cpu, 0.05)
        settimer(REAL, 3 * load_cpu + 1, 0.05)
        try:
            exec(compile(request["code"], "<solution>", "exec"), namespace)
            fn = namespace[request["entry"]]
        finally:
            settimer(PROF, 0)
            settimer(REAL, 0)
    except _Timeout:
        emit('["T",-1,0]\n')
    except BaseException as e:
        emit('["X",-1,0,%s]\n' % _text("%s: %s" % (type(e).__name__, str(e)[:200])))
    if fn is None:
        emit("", flush=True)
        return
    kept = []
    for g, (inputs, group) in enumerate(groups):
        limits, walls, budget = group["cpu"], group["wall"], group["budget"]
        outs = []
        kept.append(outs)
        spent = 0.0
        for i, args in enumerate(inputs):
            cpu_limit = min(limits[i], budget - spent)
            if cpu_limit <= 0:
                emit('["T",%d,%d]\n' % (g, i))
                break
            try:
                t0 = clock()
                settimer(PROF, cpu_limit, 0.05)
                settimer(REAL, walls[i], 0.05)
                try:
                    out = fn(*args)
                finally:
                    settimer(PROF, 0)
                    settimer(REAL, 0)
                used = clock() - t0
                spent += used
                if mode == "values":
                    payload = dumps(typed(out))
                else:
                    payload = '"%s"' % digest(out)
            except _Timeout:
                emit('["T",%d,%d]\n' % (g, i))
                break
            except BaseException as e:
                msg = "%s: %s" % (type(e).__name__, str(e)[:200])
                emit('["X",%d,%d,%s]\n' % (g, i, _text(msg)))
                break
            if mode == "prepare":
                outs.append(out)
                floaty = "true" if is_floats(out) else "false"
                emit('["R",%d,%d,%s,%r,%s]\n' % (g, i, payload, round(used, 6), floaty))
            else:
                emit('["R",%d,%d,%s]\n' % (g, i, payload))
        emit('["G",%d]\n' % g, flush=True)
    if mode == "prepare":
        floaty = any(is_floats(o) for outs in kept for o in outs)
        if request["force_values"] or floaty:
            from json import dumps

            for g, outs in enumerate(kept):
                for i, out in enumerate(outs):
                    emit('["V",%d,%d,%s]\n' % (g, i, dumps(typed(out))))
    emit("", flush=True)


if __name__ == "__main__":
    main()
    os._exit(0)
