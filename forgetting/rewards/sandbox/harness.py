"""The program the sandboxed child runs: it sets up the guards, runs the untrusted program and
its tests, and reports the outcome to the parent.

Stdlib only and self-contained: the parent reads this file's text and starts
``python -I -S -c BOOTSTRAP <this text>`` (see ``runner.py``), without site-packages and
without the ``forgetting`` package. The bootstrap executes it in private globals named
``sandbox_harness`` with a private copy of builtins, so nothing the program can reach
(``sys.modules['__main__']``, the builtins module, module attributes) is looked up by the
harness after the program starts. It calls ``main()`` only when run under that name.

The parent sends a marshalled job on stdin: program, tests, nonce, the report channel's
descriptor, rlimits, whether to add the audit hook, and the roots it may read and write. The
harness writes ``started`` on the channel, then ``status <kind> <detail>`` lines, and
``pass <nonce>`` only when the tests completed (threat model in ``docs/sandbox.md``).
"""
import builtins
import collections
import marshal
import os
import posix
import resource
import sys
import _signal
import _thread

builtins.exit = builtins.quit = sys.exit  # what site (skipped by -S) would provide

PRELOAD = ("types", "math", "random", "re", "string", "itertools", "functools", "collections",
           "collections.abc", "heapq", "bisect", "copy", "operator")
DENIED_IMPORTS = frozenset(("ctypes", "_ctypes", "_posixsubprocess", "_posixshmem", "_multiprocessing",
                            "_sqlite3", "sqlite3", "_dbm", "_gdbm", "dbm", "_ssl", "readline",
                            "_curses", "_tkinter", "spwd", "nis", "_xxsubinterpreters",
                            "_xxinterpchannels", "posix", "_signal", "_thread", "gc"))
FATAL_EVENTS = frozenset(("os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
                          "os.system", "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg",
                          "signal.pthread_kill", "sys.settrace", "sys.setprofile",
                          "sys._current_frames", "sys._current_exceptions", "sys.addaudithook",
                          "setopencodehook", "gc.get_objects", "gc.get_referrers",
                          "gc.get_referents", "code.__new__", "resource.setrlimit",
                          "resource.prlimit", "time.clock_settime", "time.clock_settime_ns",
                          "os.symlink", "os.mkfifo", "os.mknod", "webbrowser.open",
                          "marshal.loads", "marshal.load"))
PATH_EVENTS = frozenset(("os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.link", "os.chmod",
                         "os.chown", "os.chflags", "os.lchflags", "os.truncate", "os.utime",
                         "os.setxattr", "os.removexattr", "shutil.rmtree", "shutil.copyfile",
                         "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move",
                         "shutil.chown", "shutil.make_archive", "shutil.unpack_archive",
                         "tempfile.mkstemp", "tempfile.mkdtemp"))
FRAME_ATTRIBUTES = frozenset(("tb_frame", "gi_frame", "cr_frame", "ag_frame"))
PROTECTED_ATTRIBUTES = frozenset(("__code__", "__class__"))
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE
FORBIDDEN_EXIT = 3
PASSED = object()
PLAIN_SCALARS = frozenset((int, float, complex, bool, str, bytes, type(None)))
# Exact container types and their own iterators (bound now: the program may patch the classes,
# which the guard restores after every call, but not these references).
ITERATORS = {list: list.__iter__, tuple: tuple.__iter__, set: set.__iter__, frozenset: frozenset.__iter__,
             collections.deque: collections.deque.__iter__}
MAPPINGS = frozenset((dict, collections.Counter, collections.OrderedDict, collections.defaultdict))
RECORD_NAMES = frozenset(("__init__", "__repr__", "__str__", "__module__", "__qualname__", "__doc__", "__dict__",
                          "__weakref__", "__firstlineno__", "__static_attributes__", "__annotations__"))
object_getattribute = object.__getattribute__
getset_descriptor = type(type.__dict__["__dict__"])
PLAIN_ITEMS = 10_000_000

# Bound now, before any untrusted code runs: the program may rebind the originals.
write = os.write
exit_ = os._exit
getcwd = os.getcwd
stat = os.stat
addaudithook = sys.addaudithook
start_thread = _thread.start_new_thread
allocate_lock = _thread.allocate_lock
builtins_module = builtins
builtins_names = frozenset(builtins.__dict__)
module_type = type(sys)
modules = sys.modules
sys_module = sys
original_streams = (sys.stdout, sys.stderr)


def read_job():
    """The parent's job from stdin, which is then pointed at /dev/null so that nothing the
    program reads there can hold the nonce."""
    chunks = []
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return marshal.loads(b"".join(chunks))


def set_limits(limits):
    """Apply ``(name, soft, hard)`` rlimits, never above a hard limit already in force."""
    for name, soft, hard in limits:
        kind = getattr(resource, name)
        old_soft, old_hard = resource.getrlimit(kind)
        if old_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, old_hard), min(hard, old_hard)
        resource.setrlimit(kind, (soft, hard))


def preload():
    """Import what tests commonly use before the snapshot, so restoring covers them.

    ``types`` must come before the audit hook: it reads ``tb_frame`` when imported."""
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass


def compile_imports_from_source(workdir):
    """Point the bytecode cache at an empty directory, so imports compile sources and never
    unmarshal.

    Unmarshalling can build code objects with arbitrary bytecode, which reads arbitrary
    memory; with this, the audit hook can refuse ``marshal.loads`` outright."""
    sys.pycache_prefix = workdir + "/.no-pycache"


def strip_unaudited():
    """Remove the few dangerous functions that raise no audit event (pidfd signals, chroot)."""
    for module, names in ((posix, ("pidfd_open", "chroot")), (os, ("pidfd_open", "chroot")),
                          (_signal, ("pidfd_send_signal",))):
        for name in names:
            module.__dict__.pop(name, None)


def take_snapshot():
    """Copies of what the program could tamper with: sys.modules, the import system, the
    namespaces of modules loaded so far and of the mutable classes defined in them."""
    saved_modules = dict(modules)
    dicts = {}
    classes = {}
    for name, module in saved_modules.items():
        if name in ("sys", "__main__") or type(module) is not module_type:
            continue
        contents = dict(module.__dict__)
        dicts[name] = contents
        for value in contents.values():
            if isinstance(value, type) and not value.__flags__ & IMMUTABLE_TYPE:
                classes[value] = dict(value.__dict__)
    importing = {name: getattr(sys, name) for name in ("meta_path", "path_hooks", "path")}
    importing = {name: (value, list(value)) for name, value in importing.items()}
    caches = dict(sys.path_importer_cache)
    return saved_modules, dicts, classes, importing, caches


def restore_class(cls, saved):
    current = cls.__dict__
    for name in [name for name in current if name not in saved]:
        type.__delattr__(cls, name)
    for name, value in saved.items():
        if current.get(name, saved) is not value:
            type.__setattr__(cls, name, value)


def restore(snapshot):
    """Undo what the program did to modules loaded before it ran, before the tests run."""
    saved_modules, dicts, classes, importing, caches = snapshot
    setattr(sys_module, "modules", modules)
    for name, module in saved_modules.items():
        if modules.get(name) is not module:
            modules[name] = module
    for name, contents in dicts.items():
        live = saved_modules[name].__dict__
        live.clear()
        live.update(contents)
    for cls, saved in classes.items():
        restore_class(cls, saved)
    for name, (value, items) in importing.items():
        value[:] = items
        setattr(sys_module, name, value)
    sys_module.path_importer_cache.clear()
    sys_module.path_importer_cache.update(caches)


def make_status(channel):
    """``status(kind, detail)`` writes one report line to the channel and never raises."""
    def status(kind, detail=""):
        try:
            line = "status %s %s" % (kind, detail)
            line = line.replace("\n", " ")[:2000] + "\n"
            write(channel, line.encode("utf-8", "replace"))
        except BaseException:
            pass
    return status


def normalized(path):
    """Absolute, lexically normalised path, using only str methods the program cannot patch."""
    if type(path) is bytes:
        path = path.decode("utf-8", "surrogateescape")
    if not path.startswith("/"):
        path = getcwd() + "/" + path
    parts = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def inside(path, roots, strictly):
    for root in roots:
        if path.startswith(root + "/") or (not strictly and path == root):
            return True
    return False


def is_directory(path):
    try:
        return (stat(path).st_mode & 0o170000) == 0o040000
    except BaseException:
        return False


def make_hook(write_roots, read_roots, status):
    """The audit hook: ends the run as ``forbidden`` on anything that could escape the working
    directory or reach the harness, and hides frames from the program."""
    read_roots = tuple(read_roots) + tuple(write_roots)
    write_roots = tuple(write_roots)

    def forbid(event, what=""):
        status("forbidden", "%s %s" % (event, what))
        exit_(FORBIDDEN_EXIT)

    def check_open(event, args):
        path, flags = args[0], args[2]
        if type(path) is int:
            return
        if type(path) not in (str, bytes) or type(flags) is not int:
            forbid(event, "unsupported path or flags")
        where = normalized(path)
        if flags & WRITE_FLAGS:
            if not (inside(where, write_roots, True) or where == "/dev/null"):
                forbid("write", where)
        elif not inside(where, read_roots, False):
            forbid("read", where)
        elif is_directory(where) and not inside(where, write_roots, False):
            forbid("open directory", where)

    def check_paths(event, args):
        for arg in args:
            if type(arg) in (str, bytes):
                where = normalized(arg)
                if not inside(where, write_roots, True):
                    forbid(event, where)
            elif arg is not None and type(arg) not in (int, bool, float, tuple):
                forbid(event, "unsupported path")

    def hook(event, args):
        if event in FATAL_EVENTS or event.startswith(("ctypes.", "socket.", "sqlite3.")):
            forbid(event)
        elif event == "open":
            check_open(event, args)
        elif event in PATH_EVENTS:
            check_paths(event, args)
        elif event == "import":
            name = args[0]
            if type(name) is not str or name.partition(".")[0] in DENIED_IMPORTS or name.startswith("_test"):
                forbid(event, name)
        elif event == "sys._getframe":
            raise ValueError("frames are not available in the sandbox")
        elif event == "object.__getattr__":
            if args[1] in FRAME_ATTRIBUTES:
                raise AttributeError("frames are not available in the sandbox")
        elif event == "object.__setattr__":
            if args[1] in PROTECTED_ATTRIBUTES:
                forbid(event, str(args[1]))

    return hook


def describe(error):
    """``Type: message (line N)``, or a fixed text if the program's exception will not print."""
    try:
        name = type(error).__name__
        message = str(error)[:500]
        line = None
        tb = error.__traceback__
        while tb is not None:
            line = tb.tb_lineno
            tb = tb.tb_next
        where = "" if line is None else " (line %d)" % line
        return "%s: %s%s" % (name, message, where)
    except BaseException:
        return "unprintable exception"


def kind_of(error):
    return "memory" if isinstance(error, MemoryError) else "failed"


def run_code(code, namespace, label, status):
    try:
        exec(code, namespace)
        return True
    except BaseException as error:
        status(kind_of(error), "%s raised %s" % (label, describe(error)))
        return False


class NotPlainData(Exception):
    """A value crossing from the program to the tests that is not plain data."""


def check_plain(value, where):
    """Raise unless ``value`` is plain data: exact builtin scalars, or exact lists, tuples, sets,
    frozensets and dicts (and the collections types the snapshot restores) of plain data. An
    exact type's comparison is the interpreter's own; a program's object or subclass could say
    it equals anything."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        kind = type(item)
        seen += 1
        if seen > PLAIN_ITEMS:
            raise NotPlainData("%s holds more than %d values" % (where, PLAIN_ITEMS))
        if kind in PLAIN_SCALARS:
            continue
        if kind in MAPPINGS:
            stack.extend(dict.keys(item))
            stack.extend(dict.values(item))
        elif kind in ITERATORS:
            stack.extend(ITERATORS[kind](item))
        elif is_record(kind):
            stack.extend(dict.values(object_getattribute(item, "__dict__")))
        else:
            raise NotPlainData("%s is a %s, not plain data (the tests compare only builtin values)"
                               % (where, kind.__name__))


def is_record(kind):
    """A class of the program that only holds attributes (a tree ``Node``): derived from
    ``object`` alone, no ``__slots__``, no special method but ``__init__``, ``__repr__`` and
    ``__str__``, so comparing or reading its instances runs none of the program's code."""
    if kind.__mro__ != (kind, object) or not isinstance(kind.__dict__.get("__dict__"), getset_descriptor):
        return False
    return all(not (name.startswith("__") and name.endswith("__")) or name in RECORD_NAMES
               for name in type.__getattribute__(kind, "__dict__"))


def guarded(function, name, snapshot):
    """``function`` as the tests see it: each call's result (and what it did to the tests'
    list, dict and set arguments) must be plain data, and the modules and classes the tests
    share are restored after the call, so a candidate cannot patch them mid-check."""
    def call(*args, **kwargs):
        try:
            result = function(*args, **kwargs)
        finally:
            restore(snapshot)
        check_plain(result, "the result of %s()" % name)
        for argument in (*args, *kwargs.values()):
            if type(argument) in (list, dict, set):
                check_plain(argument, "an argument %s() changed" % name)
        return result
    return call


def tests_namespace(program_namespace, snapshot):
    """The program's names, minus any that would shadow a builtin, over a private copy of
    the (just restored) builtins, so a candidate patching builtins mid-check cannot reach it;
    every callable the program defined is ``guarded``."""
    namespace = {}
    for name, value in program_namespace.items():
        if type(name) is str and not name.startswith("__") and name not in builtins_names:
            is_module = type(value) is module_type
            namespace[name] = guarded(value, name, snapshot) if callable(value) and not is_module else value
    namespace["__builtins__"] = dict(builtins_module.__dict__)
    namespace["__name__"] = "__tests__"
    return namespace


def flush_streams():
    for stream in original_streams:
        try:
            stream.flush()
        except BaseException:
            pass


def run_program_then_tests(job, snapshot, status):
    """True only if the program and then the tests ran without raising."""
    try:
        program = compile(job["program"], "<program>", "exec", dont_inherit=True)
        tests = compile(job["tests"], "<tests>", "exec", dont_inherit=True)
    except BaseException as error:
        status(kind_of(error), "does not compile: " + describe(error))
        return False
    namespace = {"__builtins__": builtins_module, "__name__": "__sandbox__"}
    if not run_code(program, namespace, "program", status):
        return False
    try:
        restore(snapshot)
    except BaseException as error:
        status("failed", "the program broke the interpreter beyond repair: " + describe(error))
        return False
    if not run_code(tests, tests_namespace(namespace, snapshot), "tests", status):
        return False
    flush_streams()
    return True


def worker(job, snapshot, status, box, done):
    """The test thread: puts the private ``PASSED`` marker in ``box`` on success, and always
    releases ``done``."""
    try:
        if run_program_then_tests(job, snapshot, status):
            box.append(PASSED)
    except BaseException:
        pass
    finally:
        done.release()


def main():
    """Set up, run the untrusted code in a second thread, and write the nonce only if that
    thread left the marker; the nonce lives only in this (main) thread's frame."""
    job = read_job()
    channel = job["channel"]
    write(channel, b"started\n")
    pass_line = b"pass " + job.pop("nonce").encode() + b"\n"
    status = make_status(channel)
    try:
        preload()
        compile_imports_from_source(job["write_roots"][0])
        strip_unaudited()
        snapshot = take_snapshot()
        set_limits(job["limits"])
        if job["audit"]:
            addaudithook(make_hook(job["write_roots"], job["read_roots"], status))
        box, done = [], allocate_lock()
        done.acquire()
        start_thread(worker, (job, snapshot, status, box, done))
        del job
    except BaseException as error:
        status("error", "harness setup: " + describe(error))
        exit_(1)
    try:
        done.acquire()
        if box and box[0] is PASSED:
            write(channel, pass_line)
            exit_(0)
    except BaseException:
        pass
    exit_(1)


if __name__ == "sandbox_harness":
    main()
