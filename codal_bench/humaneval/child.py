# ruff: noqa: UP031  (%-formatting on purpose: it is the fastest in the hot loop)
# mypy: ignore-errors
# (Runs alone under the system python; kept small and untyped on purpose.)
"""Runs one candidate inside the sandbox and reports what it returned, never whether it passed.

This file is executed by the system interpreter as ``python3 -I -S child.py`` under an
unprivileged uid, so it must stay standard-library only and must not import ``codal_bench``.
Everything here runs in the same process as untrusted code: nothing it writes is trusted by the
parent beyond "these bytes came out". Expected outputs never enter this process, so forging a
pass would require actually computing the right answers.

Answers run in a session (stdin is a pipe from the trusted supervisor, which meters every
step from outside: no timer or signal in here limits anything). Each step is one frame, its
marshal bytes after their length in 4 little-endian bytes: ``("L", code, entry, mode)`` loads
the answer, ``("I", inputs)`` calls it on a batch of inputs. The reply to each step is one frame
of records, each a tag byte, a 4-byte little-endian length and the payload: ``R`` an output (its
digest in hex, or its typed JSON value in "values" mode), ``X`` an exception message (the batch
stops there), ``O`` loaded. User prints go to /dev/null.

Prepare mode (trusted canonical solutions only, never a candidate) runs many problems in one
sandbox and balances them over forked workers::

    {"mode": "prepare", "workers": n, "cpu": s, "wall": s,
     "problems": [(code, entry, force_values, load_cpu), ...],
     "units": [(k, first, stride, offset, size), ...]}
    then the units' inputs, each marshalled alone (``size`` bytes at ``offset``)

Unit ``u`` holds inputs ``first, first + stride, ...`` of piece (problem) ``k``. The workers
pull unit numbers from a shared pipe, so a slow unit never leaves a core idle while work
remains. Replies: ``["R", k, i, digest, cpu_s, is_floats]``, ``["V", k, i, typed]`` (for every
output of a unit when values are forced or any of its outputs is floats), ``["X", k, i, msg]``,
``["T", k, i]`` (``i == -1``: loading failed), then ``["D"]`` once every worker exited cleanly.
Workers write whole batches of lines with single writes to stdout; when it is a regular file
(its shared offset moves atomically per write) lines never interleave, otherwise one worker runs.
"""

import _signal
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
            raw = _doubles(x, t)
        if raw is not None:
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


def _doubles(x, t):
    """`x`'s numbers as little-endian doubles, or None when a double would not equal one."""
    if len(x) < 4096:
        fmt = "<%dd" % len(x)
        try:
            raw = pack(fmt, *x)
        except (OverflowError, StructError):  # an int beyond any double
            return None
        return raw if unpack(fmt, raw) == (x if t is tuple else tuple(x)) else None
    global _array
    if _array is None:  # its import costs milliseconds (collections.abc): big lists only
        from array import array as _array
    try:
        arr = _array("d", x)
    except OverflowError:
        return None
    if arr.tolist() != (x if t is list else list(x)):
        return None
    if sys.byteorder != "little":
        arr.byteswap()
    return arr.tobytes()


_array = None


def _flat(parts):
    return "".join(p if type(p) is str else p.decode("latin-1") for p in parts)


def digest(x):
    t = type(x)  # the commonest outputs first, with exactly the bytes `canon` would give
    if t is int or t is bool:
        return blake2b(("i%x" % x).encode(), digest_size=16).hexdigest()
    if t is str:
        h = blake2b(("s%d:" % len(x)).encode(), digest_size=16)
        h.update(x.encode("utf-8", "surrogatepass"))
        return h.hexdigest()
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


def _frames(data, off=0):
    """The request's objects: each is its marshal bytes after a 4-byte little-endian length."""
    view = memoryview(data)
    end = len(data)
    while off < end:
        size = unpack("<I", view[off : off + 4])[0]
        off += 4
        yield marshal.loads(view[off : off + size])
        off += size


def main():
    if os.fstat(0).st_mode & 0o170000 == 0o010000:  # a pipe: a session of steps
        return session()
    data = sys.stdin.buffer.read()
    head = next(_frames(data))
    return prepare_pool(head, memoryview(data)[4 + unpack("<I", data[:4])[0] :])


def _read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _record(tag, payload):
    return tag + pack("<I", len(payload)) + payload


def session():
    """Steps from the supervisor until it closes our stdin; one reply frame per step."""
    in_fd = os.dup(0)
    out_fd = _redirect()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    fn = None
    mode = "digest"
    dumps = None
    while True:
        head = _read_exact(in_fd, 4)
        if head is None:
            return
        step = marshal.loads(_read_exact(in_fd, unpack("<I", head)[0]))
        parts = []
        if step[0] == "L":
            _, code, entry, mode = step
            if mode == "values" and dumps is None:
                from json import dumps
            try:
                namespace = {}  # like EvalPlus: no __name__, so `__main__` blocks are skipped
                exec(compile(code, "<solution>", "exec"), namespace)
                fn = namespace[entry]
                parts.append(_record(b"O", b""))
            except BaseException as e:
                parts.append(_record(b"X", _message(e)))
        else:
            for args in step[1]:
                try:
                    out = fn(*args)
                    if mode == "values":
                        payload = dumps(typed(out)).encode("utf-8", "surrogatepass")
                    else:
                        payload = digest(out).encode()
                except BaseException as e:
                    parts.append(_record(b"X", _message(e)))
                    break
                parts.append(_record(b"R", payload))
        body = b"".join(parts)
        data = pack("<I", len(body)) + body
        while data:
            data = data[os.write(out_fd, data) :]


def _message(e):
    try:
        text = "%s: %s" % (type(e).__name__, str(e)[:200])
    except BaseException:
        text = type(e).__name__
    return text.encode("utf-8", "replace")[:400]


def _setup():
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    _signal.signal(_signal.SIGPROF, _on_timer)
    _signal.signal(_signal.SIGALRM, _on_timer)


def _redirect():
    """Point stdin/stdout at /dev/null; return a descriptor of the original stdout."""
    out_fd = os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return out_fd


def _emitter(out_fd, batch):
    pending = []
    size = [0]

    def emit(line, flush=False):
        # One write per batch (whole lines), so concurrent writers never split a line.
        pending.append(line)
        size[0] += len(line)
        if flush or size[0] >= batch:
            data = "".join(pending).encode("utf-8", "surrogatepass")
            pending.clear()
            size[0] = 0
            while data:
                data = data[os.write(out_fd, data) :]

    return emit


def _load(code, entry, load_cpu):
    """(fn, None) or (None, failure record body) for trusted code: exec it with a time limit."""
    settimer, PROF, REAL = _signal.setitimer, _signal.ITIMER_PROF, _signal.ITIMER_REAL
    try:
        namespace = {}  # like EvalPlus: no __name__, so `if __name__ == "__main__"` is skipped
        settimer(PROF, load_cpu, 0.05)
        settimer(REAL, 3 * load_cpu + 1, 0.05)
        try:
            exec(compile(code, "<solution>", "exec"), namespace)
            return namespace[entry], None
        finally:
            settimer(PROF, 0)
            settimer(REAL, 0)
    except _Timeout:
        return None, "T"
    except BaseException as e:
        return None, "X" + _text("%s: %s" % (type(e).__name__, str(e)[:200]))


def prepare_pool(head, data):
    """Trusted canonical solutions: workers pull units from a pipe until it runs dry."""
    out_fd = _redirect()
    _setup()
    units = head["units"]
    workers = max(1, min(head["workers"], len(units)))
    if os.fstat(out_fd).st_mode & 0o170000 != 0o100000:
        workers = 1  # not a regular file: concurrent writes could interleave
    r, w = os.pipe()
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(w)
                pool_worker(head, data, r, _emitter(out_fd, 16384))
                status = 0
            finally:
                os._exit(status)
        pids.append(pid)
    os.close(r)
    order = pack("<%dI" % len(units), *range(len(units)))
    for off in range(0, len(order), 4096):  # <= PIPE_BUF: each write lands whole
        os.write(w, order[off : off + 4096])
    os.close(w)
    ok = True
    for pid in pids:
        ok = os.waitpid(pid, 0)[1] == 0 and ok
    if ok:
        _emitter(out_fd, 0)('["D"]\n', flush=True)


def pool_worker(head, data, queue_fd, emit):
    problems, units = head["problems"], head["units"]
    cpu_limit, wall_limit = head["cpu"], head["wall"]
    settimer, PROF, REAL = _signal.setitimer, _signal.ITIMER_PROF, _signal.ITIMER_REAL
    clock = time.process_time
    loaded = {}
    dumps = None
    while True:
        raw = os.read(queue_fd, 4)
        if len(raw) < 4:
            break
        k, first, stride, off, size = units[unpack("<I", raw)[0]]
        fn = loaded.get(k)
        if fn is None:
            code, entry, _, load_cpu = problems[k]
            fn, why = _load(code, entry, load_cpu)
            loaded[k] = fn or False
            if why is not None:
                emit('["%s",%d,-1%s]\n' % (why[0], k, "," + why[1:] if why[1:] else ""))
        if not fn:
            continue
        outs = []
        i = first - stride
        for args in marshal.loads(data[off : off + size]):
            i += stride
            try:
                t0 = clock()
                settimer(PROF, cpu_limit, 0.05)
                settimer(REAL, wall_limit, 0.05)
                try:
                    out = fn(*args)
                finally:
                    settimer(PROF, 0)
                    settimer(REAL, 0)
                used = clock() - t0
                payload = digest(out)
            except _Timeout:
                emit('["T",%d,%d]\n' % (k, i))
                break
            except BaseException as e:
                msg = "%s: %s" % (type(e).__name__, str(e)[:200])
                emit('["X",%d,%d,%s]\n' % (k, i, _text(msg)))
                break
            outs.append(out)
            floaty = "true" if is_floats(out) else "false"
            emit('["R",%d,%d,"%s",%r,%s]\n' % (k, i, payload, round(used, 6), floaty))
        if problems[k][2] or any(is_floats(o) for o in outs):
            if dumps is None:
                from json import dumps
            i = first
            for out in outs:
                emit('["V",%d,%d,%s]\n' % (k, i, dumps(typed(out))))
                i += stride
    emit("", flush=True)


if __name__ == "__main__":
    main()
    os._exit(0)
