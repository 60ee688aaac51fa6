//! FUSE over io_uring: requests served on the core of the process that made
//! them.
//!
//! With the classic transport every request is a `read` of /dev/fuse and
//! every reply a `write`, and the kernel wakes whichever daemon thread is
//! waiting, usually on another core. On a virtual machine each such wakeup of
//! a halted core costs more than the request's own work. With FUSE over
//! io_uring (Linux 6.14, the `fuse` module's `enable_uring` parameter) the
//! kernel keeps one queue per possible CPU and hands a request to the queue of
//! the CPU its caller runs on. Here each queue is served by threads pinned to
//! that CPU, so the caller and the thread serving it meet on one core.
//!
//! Layout, per the kernel's `fuse_uring_req_header`: each ring entry has a
//! header buffer (`in_out`: the `fuse_in_header` of a request, then the
//! `fuse_out_header` of its reply; `op_in`: the operation's fixed argument;
//! `ring_ent_in_out`: the commit id and payload size) and a payload buffer
//! (the remaining arguments: names, write data; then the reply's data).
//!
//! One entry per thread, each with its own small io_uring: a request that
//! blocks (an fsync, a read that decodes an archived block) holds its own
//! thread only, and the other threads of that CPU go on serving. A reply sent
//! from another thread is written into the entry's buffers and handed back to
//! the entry's thread, which alone submits to its ring.

use std::io;
use std::io::IoSlice;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::Condvar;
use std::sync::Mutex;

use io_uring::IoUring;
use io_uring::cqueue;
use io_uring::opcode;
use io_uring::squeue;
use io_uring::types;
use log::debug;
use log::error;
use log::warn;

use crate::Filesystem;
use crate::dev_beside_ring::BesideRing;
use crate::ll;
use crate::reply::ReplyEmpty;
use crate::reply::ReplySender;
use crate::request::RequestWithSender;
use crate::ring_large_reads::LARGE_READ;
use crate::ring_large_reads::Spread;
use crate::ring_priority::IdleWatch;
use crate::session::SessionEventLoop;

/// `FUSE_IO_URING_CMD_REGISTER`: register an entry's buffers, fetch a request.
const CMD_REGISTER: u32 = 1;
/// `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`: send a reply, fetch the next request.
const CMD_COMMIT_AND_FETCH: u32 = 2;

/// `struct fuse_uring_req_header`: `in_out` (128 bytes), `op_in` (128), then
/// `struct fuse_uring_ent_in_out` (flags, commit_id, payload_sz, padding,
/// reserved).
const IN_OUT_AT: usize = 0;
const OP_IN_AT: usize = 128;
const OP_IN_LEN: usize = 128;
const COMMIT_ID_AT: usize = 256 + 8;
const PAYLOAD_SZ_AT: usize = 256 + 16;
/// The header buffer: one page, as libfuse allocates it.
const HEADER_LEN: usize = 4096;
const IN_HEADER_LEN: usize = size_of::<ll::fuse_abi::fuse_in_header>();
const OUT_HEADER_LEN: usize = size_of::<ll::fuse_abi::fuse_out_header>();

/// The kernel's smallest payload buffer (`FUSE_MIN_READ_BUFFER`).
pub(crate) const MIN_PAYLOAD: usize = 8192;

/// Queue ids the kernel expects: one per possible CPU (`num_possible_cpus`).
/// The ring takes over only once every queue has an entry.
pub(crate) fn possible_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| parse_cpu_list_end(s.trim()))
        .unwrap_or_else(|| {
            // SAFETY: sysconf has no preconditions.
            let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
            usize::try_from(n).unwrap_or(1).max(1)
        })
}

/// "0-3,8-11" -> 12: the kernel numbers queues up to the last possible CPU.
fn parse_cpu_list_end(list: &str) -> Option<usize> {
    let last = list.split(',').next_back()?;
    let end = last.split('-').next_back()?;
    end.parse::<usize>().ok().map(|n| n + 1)
}

/// One entry's buffers. The kernel writes a request into them before the
/// entry's completion and reads the reply after its commit is submitted; in
/// between they belong to the thread serving the entry and to the one reply.
struct Buffers {
    header: Box<[u64]>,
    payload: Box<[u8]>,
    iov: Box<[Iovec; 2]>,
}

/// `struct iovec` with the pointer kept as an address, so the buffers can
/// move between threads.
#[repr(C)]
#[derive(Clone, Copy)]
struct Iovec {
    base: usize,
    len: usize,
}

impl Buffers {
    fn new(payload_len: usize) -> Buffers {
        let mut b = Buffers {
            header: vec![0u64; HEADER_LEN / 8].into_boxed_slice(),
            payload: vec![0u8; payload_len].into_boxed_slice(),
            iov: Box::new([Iovec { base: 0, len: 0 }; 2]),
        };
        b.iov[0] = Iovec {
            base: b.header.as_mut_ptr() as usize,
            len: HEADER_LEN,
        };
        b.iov[1] = Iovec {
            base: b.payload.as_mut_ptr() as usize,
            len: payload_len,
        };
        b
    }

    fn header(&self) -> &[u8] {
        // SAFETY: a u64 slice viewed as bytes, same length in bytes.
        unsafe { std::slice::from_raw_parts(self.header.as_ptr().cast(), HEADER_LEN) }
    }

    fn header_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.header.as_mut_ptr().cast(), HEADER_LEN) }
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.header()[at..at + 4].try_into().expect("4 bytes"))
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.header()[at..at + 8].try_into().expect("8 bytes"))
    }
}

/// Where a reply goes: the entry's buffers, then a wakeup of the entry's
/// thread, which submits the commit.
#[derive(Debug, Clone)]
pub(crate) struct RingReply(Arc<Slot>);

struct Slot {
    buffers: Mutex<Buffers>,
    replied: Mutex<bool>,
    wake: Condvar,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ring entry")
    }
}

impl RingReply {
    /// Writes a reply (a `fuse_out_header` and its data, as the classic
    /// transport would `writev` them) into the entry's buffers.
    pub(crate) fn send(&self, data: &[IoSlice<'_>]) -> io::Result<()> {
        let total: usize = data.iter().map(|s| s.len()).sum();
        let result = {
            let mut bufs = self.0.buffers.lock().unwrap_or_else(|p| p.into_inner());
            let payload_len = total.saturating_sub(OUT_HEADER_LEN);
            if total < OUT_HEADER_LEN || payload_len > bufs.payload.len() {
                // Too long for the entry (cannot happen with the negotiated
                // max_write): answer the request with an error instead.
                let mut header = [0u8; OUT_HEADER_LEN];
                copy_prefix(data, &mut header);
                header[4..8].copy_from_slice(&(-libc::EIO).to_ne_bytes());
                let h = bufs.header_mut();
                h[IN_OUT_AT..IN_OUT_AT + OUT_HEADER_LEN].copy_from_slice(&header);
                h[PAYLOAD_SZ_AT..PAYLOAD_SZ_AT + 4].copy_from_slice(&0u32.to_ne_bytes());
                Err(io::Error::other(format!(
                    "reply of {total} bytes does not fit the ring entry"
                )))
            } else {
                let mut at = 0usize;
                for slice in data {
                    let mut rest: &[u8] = slice;
                    if at < OUT_HEADER_LEN {
                        let n = rest.len().min(OUT_HEADER_LEN - at);
                        bufs.header_mut()[IN_OUT_AT + at..IN_OUT_AT + at + n]
                            .copy_from_slice(&rest[..n]);
                        at += n;
                        rest = &rest[n..];
                    }
                    if !rest.is_empty() {
                        let p = at - OUT_HEADER_LEN;
                        bufs.payload[p..p + rest.len()].copy_from_slice(rest);
                        at += rest.len();
                    }
                }
                let len = u32::try_from(payload_len).expect("payload fits the entry");
                bufs.header_mut()[PAYLOAD_SZ_AT..PAYLOAD_SZ_AT + 4]
                    .copy_from_slice(&len.to_ne_bytes());
                Ok(())
            }
        };
        *self.0.replied.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.0.wake.notify_one();
        result
    }

    /// Waits until the request's reply is in the buffers, and takes it.
    fn wait_replied(&self) {
        let mut replied = self.0.replied.lock().unwrap_or_else(|p| p.into_inner());
        while !*replied {
            replied = self.0.wake.wait(replied).unwrap_or_else(|p| p.into_inner());
        }
        *replied = false;
    }
}

fn copy_prefix(data: &[IoSlice<'_>], out: &mut [u8]) {
    let mut at = 0;
    for slice in data {
        if at >= out.len() {
            break;
        }
        let n = slice.len().min(out.len() - at);
        out[at..at + n].copy_from_slice(&slice[..n]);
        at += n;
    }
}

/// The 80-byte command area of an SQE128: `struct fuse_uring_cmd_req`.
fn cmd_req(qid: u16, commit_id: u64) -> [u8; 80] {
    let mut cmd = [0u8; 80];
    cmd[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    cmd[16..18].copy_from_slice(&qid.to_ne_bytes());
    cmd
}

/// Sets an SQE's `len` (the io-uring crate's `UringCmd80` has no setter; the
/// kernel wants 2, the number of iovecs, on REGISTER).
fn with_len(entry: squeue::Entry128, len: u32) -> squeue::Entry128 {
    const LEN_AT: usize = 24; // struct io_uring_sqe: opcode, flags, ioprio, fd, off, addr, len
    // SAFETY: Entry128 is repr(C): a 64-byte io_uring_sqe and 64 more bytes.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(entry) };
    raw[LEN_AT..LEN_AT + 4].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: same layout back; every byte pattern is a valid SQE value.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

pub(crate) fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays in bounds for
    // cpu < CPU_SETSIZE, checked first.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            // A CPU outside this process's cpuset (taskset, a container):
            // the queue is still served, from wherever the thread runs.
            debug!(
                "ring queue {cpu}: not pinned: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// Serves one entry of queue `qid` until the connection ends.
pub(crate) fn serve_entry<FS: Filesystem>(
    event_loop: &SessionEventLoop<FS>,
    fd: RawFd,
    qid: u16,
    payload_len: usize,
    idle_watch: Option<IdleWatch>,
    beside_ring: &BesideRing,
) -> io::Result<()> {
    pin_to_cpu(usize::from(qid));
    let mut spread = Spread::pinned_to(usize::from(qid));
    // Held while the thread serves: the watchdog ends with the last one.
    let _idle_watch = idle_watch.inspect(|w| {
        if let Err(e) = w.enter_idle(qid) {
            warn!("ring queue {qid}: SCHED_IDLE refused: {e}");
        }
    });
    let mut ring: IoUring<squeue::Entry128, cqueue::Entry> = IoUring::builder().build(2)?;
    let reply = RingReply(Arc::new(Slot {
        buffers: Mutex::new(Buffers::new(payload_len)),
        replied: Mutex::new(false),
        wake: Condvar::new(),
    }));
    let iov_addr = {
        let bufs = reply.0.buffers.lock().unwrap_or_else(|p| p.into_inner());
        bufs.iov.as_ptr() as u64
    };
    let register = with_len(
        opcode::UringCmd80::new(types::Fd(fd), CMD_REGISTER)
            .cmd(cmd_req(qid, 0))
            .addr(Some(iov_addr))
            .build(),
        2,
    );
    // The request in the classic layout, for the parser: a header, a
    // fixed argument, then at most a payload; u64s for the header's
    // alignment.
    let mut request_words = vec![0u64; (IN_HEADER_LEN + OP_IN_LEN + payload_len).div_ceil(8)];
    let mut next = Some(register.clone());
    let mut last = register.clone();
    let mut failures = 0u32;
    loop {
        if let Some(sqe) = next.take() {
            // SAFETY: the SQE's iovec and buffers live in `reply`, declared
            // before the ring and so dropped after it; closing the ring
            // cancels its commands.
            unsafe {
                ring.submission()
                    .push(&sqe)
                    .map_err(|_| io::Error::other("ring submission queue full"))?;
            }
            last = sqe;
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            // A signal or a ptrace attach interrupted the wait; what was
            // pushed is submitted already.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let Some(cqe) = ring.completion().next() else {
            continue;
        };
        match cqe.result() {
            0 => {
                failures = 0;
                beside_ring.ring_served();
            }
            e if e == -libc::EAGAIN || e == -libc::EINTR => {
                // The connection is not initialised yet: send it again.
                std::thread::sleep(std::time::Duration::from_millis(1));
                next = Some(last.clone());
                continue;
            }
            e if e == -libc::ENOTCONN || e == -libc::ECANCELED || e == -libc::ENODEV => {
                return Ok(());
            }
            e => {
                // The kernel refused this entry's command, and the entry is
                // lost to it. Register the buffers again as a new entry, so
                // the queue keeps its threads; give up after repeated
                // refusals.
                failures += 1;
                let err = io::Error::from_raw_os_error(-e);
                if failures > 8 {
                    return Err(err);
                }
                warn!("ring queue {qid}: {err}; registering the entry again");
                std::thread::sleep(std::time::Duration::from_millis(u64::from(failures)));
                next = Some(register.clone());
                continue;
            }
        }
        let parsed = {
            let bufs = reply.0.buffers.lock().unwrap_or_else(|p| p.into_inner());
            let commit_id = bufs.u64_at(COMMIT_ID_AT);
            let unique = bufs.u64_at(IN_OUT_AT + 8);
            let request_len = bufs.u32_at(IN_OUT_AT) as usize;
            let payload_sz = bufs.u32_at(PAYLOAD_SZ_AT) as usize;
            let buf = as_bytes_mut(&mut request_words);
            let op_len = request_len
                .checked_sub(IN_HEADER_LEN + payload_sz)
                .filter(|&n| {
                    n <= OP_IN_LEN && payload_sz <= bufs.payload.len() && request_len <= buf.len()
                });
            if let Some(op_len) = op_len {
                // The classic layout the parser reads: header, fixed
                // argument, then the rest.
                let header = bufs.header();
                buf[..IN_HEADER_LEN].copy_from_slice(&header[IN_OUT_AT..IN_OUT_AT + IN_HEADER_LEN]);
                buf[IN_HEADER_LEN..IN_HEADER_LEN + op_len]
                    .copy_from_slice(&header[OP_IN_AT..OP_IN_AT + op_len]);
                buf[IN_HEADER_LEN + op_len..request_len]
                    .copy_from_slice(&bufs.payload[..payload_sz]);
            } else {
                error!(
                    "ring queue {qid}: malformed request: length {request_len}, payload {payload_sz}"
                );
            }
            (commit_id, unique, op_len.map(|_| request_len))
        };
        let (commit_id, unique, len) = parsed;
        let request = len.and_then(|len| {
            RequestWithSender::new(
                ReplySender::Ring(reply.clone()),
                &as_bytes_mut(&mut request_words)[..len],
            )
        });
        match request {
            None => {
                spread.before(false);
                reply_errno(&reply, unique, libc::EIO)
            }
            Some(req) => match spread_for(&mut spread, req.request.operation()) {
                Ok(ll::Operation::Destroy(_)) => {
                    let _ = req.reply::<ReplyEmpty>().ok();
                }
                // These have no reply; the kernel sends them through
                // /dev/fuse, never a ring. Should one come, the commit still
                // needs a header.
                Ok(ll::Operation::Forget(_) | ll::Operation::BatchForget(_)) => {
                    req.dispatch(event_loop);
                    warn!("ring queue {qid}: a forget arrived on the ring");
                    reply_errno(&reply, unique, 0);
                }
                // A handler that panics must not take the entry with it:
                // its reply (dropped while unwinding, which answers EIO)
                // still has to be committed, or the caller waits forever.
                _ => {
                    let dispatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        req.dispatch(event_loop)
                    }));
                    if dispatched.is_err() {
                        error!("ring queue {qid}: request {unique} panicked; answered EIO");
                    }
                }
            },
        }
        reply.wait_replied();
        next = Some(
            opcode::UringCmd80::new(types::Fd(fd), CMD_COMMIT_AND_FETCH)
                .cmd(cmd_req(qid, commit_id))
                .build(),
        );
    }
}

/// Tells `spread` whether the request is a large read (ring_large_reads.rs),
/// and hands its operation on, parsed once.
fn spread_for<'a>(
    spread: &mut Spread,
    operation: Result<ll::Operation<'a>, ll::request::RequestError>,
) -> Result<ll::Operation<'a>, ll::request::RequestError> {
    spread.before(matches!(&operation, Ok(ll::Operation::Read(r)) if r.size() >= LARGE_READ));
    operation
}

fn as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: u64s viewed as their bytes, the same memory and length.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
}

/// Answers a request with `errno` (0: an empty success).
fn reply_errno(reply: &RingReply, unique: u64, errno: i32) {
    let mut header = [0u8; OUT_HEADER_LEN];
    header[..4].copy_from_slice(&(OUT_HEADER_LEN as u32).to_ne_bytes());
    header[4..8].copy_from_slice(&(-errno).to_ne_bytes());
    header[8..16].copy_from_slice(&unique.to_ne_bytes());
    let _ = reply.send(&[IoSlice::new(&header)]);
}
