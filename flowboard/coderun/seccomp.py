"""A seccomp filter for the process that runs user code: no new processes, no signals to others, no sockets unless
the node allows the network, none of the kernel's rarely needed and often buggy interfaces.

Standard library only: this file runs inside the sandbox, next to child.py. The filter is a classic BPF program
written by hand (no libseccomp on the machines we target); it knows x86-64 only, and `install` says so when the
machine is something else, so the caller can tell the user which protections are on.

Threads stay allowed (clone with CLONE_THREAD): the memory limit bounds how many a call can start.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
RET_KILL_PROCESS = 0x80000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
CLONE_THREAD = 0x00010000

# BPF opcodes
LD_ABS_W = 0x20
JEQ = 0x15
JGE = 0x35
JSET = 0x45
RET = 0x06

# seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16

# x86-64 syscall numbers
NR = {
    "socket": 41, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "kill": 62, "ptrace": 101, "syslog": 103,
    "personality": 135, "pivot_root": 155, "chroot": 161, "mount": 165, "umount2": 166, "tkill": 200,
    "tgkill": 234, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
    "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "perf_event_open": 298, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "bpf": 321, "execveat": 322, "userfaultfd": 323, "pidfd_send_signal": 424,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
    "pidfd_getfd": 438, "mount_setattr": 442, "setsid": 112, "setpgid": 109,
}
DENIED = (
    "fork", "vfork", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key",
    "request_key", "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "init_module",
    "finit_module", "delete_module", "kcmp", "personality", "syslog", "tkill", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "pidfd_send_signal", "pidfd_open", "pidfd_getfd", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "setsid", "setpgid",
)


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def program(pid: int, network: bool) -> bytes:
    """The filter as bytes of `struct sock_filter`: `pid` is the process's own id (the only one it may signal)."""
    eperm = RET_ERRNO | errno.EPERM
    out = [
        _ins(LD_ABS_W, OFF_ARCH),
        _ins(JEQ, AUDIT_ARCH_X86_64, 1, 0),
        _ins(RET, RET_KILL_PROCESS),
        _ins(LD_ABS_W, OFF_NR),
        _ins(JGE, 0x40000000, 0, 1),  # the x32 ABI: another numbering, refused as a whole
        _ins(RET, eperm),
        # clone3 hides its flags in memory a filter cannot read: ENOSYS makes the C library fall back to clone
        _ins(JEQ, NR["clone3"], 0, 1),
        _ins(RET, RET_ERRNO | errno.ENOSYS),
        # clone: threads only, never a new process
        _ins(JEQ, NR["clone"], 0, 4),
        _ins(LD_ABS_W, OFF_ARG0),
        _ins(JSET, CLONE_THREAD, 0, 1),
        _ins(RET, RET_ALLOW),
        _ins(RET, eperm),
    ]
    for name in ("kill", "tgkill"):  # signals only to itself
        out += [
            _ins(JEQ, NR[name], 0, 4),
            _ins(LD_ABS_W, OFF_ARG0),
            _ins(JEQ, pid, 0, 1),
            _ins(RET, RET_ALLOW),
            _ins(RET, eperm),
        ]
    denied = [*DENIED, *(() if network else ("socket",))]
    for name in denied:
        out += [_ins(JEQ, NR[name], 0, 1), _ins(RET, eperm)]
    out.append(_ins(RET, RET_ALLOW))
    return b"".join(out)


LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG: the kernel kills this process when the one that forked it ends."""
    LIBC.prctl(1, 9, 0, 0, 0)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(pid: int, network: bool) -> str | None:
    """Load the filter into this process for good. None when done, else why not (in plain words)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"the system-call filter knows x86-64 only, not {platform.machine()}"
    libc = LIBC
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return f"no_new_privs failed: {errno.errorcode.get(ctypes.get_errno(), '?')}"
    code = program(pid, network)
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buffer))
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        return f"the kernel refused the system-call filter: {errno.errorcode.get(ctypes.get_errno(), '?')}"
    return None
