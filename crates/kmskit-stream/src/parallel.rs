//! Serial and parallel whole-buffer and reader→writer paths. Every path cuts the same chunks and uses
//! the same nonces, so the bytes are identical whatever the worker count.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Mutex, PoisonError, mpsc};

use kmskit_core::crypto::TAG_LEN;
use zeroize::Zeroizing;

use crate::error::{Result, StreamError};
use crate::format::{MAX_CHUNKS, Session, body_len, read_full};

fn chunk_count(pt_len: usize, c: usize) -> usize {
    pt_len.div_ceil(c).max(1)
}

/// Runs `job(first_chunk_index, group)` over `groups` contiguous groups on scoped threads (the first
/// group on the calling thread) and returns the error of the lowest failing group.
fn run_groups<T: Send>(groups: Vec<T>, job: impl Fn(T) -> Result<()> + Sync) -> Result<()> {
    let mut it = groups.into_iter();
    let Some(first) = it.next() else {
        return Ok(());
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = it.map(|g| s.spawn(|| job(g))).collect();
        let mut result = job(first);
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(StreamError::InvalidArgument("worker panicked".into())));
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// Sets `out` to `len` bytes, zero-filling only where it has to grow (a reused buffer costs nothing).
/// A buffer too small to hold `len` is replaced by a zeroed allocation, which the allocator gets from
/// fresh zero pages for large sizes, so growing costs no extra pass over memory either.
fn size_to(out: &mut Vec<u8>, len: usize) {
    if out.len() >= len {
        out.truncate(len);
    } else if out.capacity() < len {
        zeroize::Zeroize::zeroize(out);
        *out = vec![0u8; len];
    } else {
        out.resize(len, 0);
    }
}

/// Encrypts `pt` into header ‖ body with up to `workers` threads, into `out` (replacing its contents,
/// reusing its allocation).
pub(crate) fn seal_into(session: &Session, pt: &[u8], workers: usize, out: &mut Vec<u8>) -> Result<()> {
    let c = session.chunk_size();
    let n = chunk_count(pt.len(), c);
    if n as u64 > MAX_CHUNKS {
        return Err(StreamError::LimitExceeded("more than 2^32 chunks"));
    }
    let header = session.header().to_bytes();
    let total = header.len() + body_len(pt.len() as u64, c as u64) as usize;
    let w = workers.clamp(1, n);
    size_to(out, total);
    out[..header.len()].copy_from_slice(&header);
    let body = &mut out[header.len()..];
    // Each slot is one chunk's ciphertext ‖ tag, sealed straight from `pt` (one pass over memory on
    // engines with an out-of-place seal).
    let seal_range = |(first, slots): (usize, &mut [u8])| -> Result<()> {
        for (k, slot) in slots.chunks_mut(c + TAG_LEN).enumerate() {
            let i = first + k;
            let p_len = slot.len() - TAG_LEN;
            session.seal_to(i as u64, i + 1 == n, &pt[i * c..i * c + p_len], slot)?;
        }
        Ok(())
    };
    if w == 1 {
        return seal_range((0, body));
    }
    let per = n.div_ceil(w);
    let groups: Vec<(usize, &mut [u8])> = body
        .chunks_mut(per * (c + TAG_LEN))
        .enumerate()
        .map(|(g, s)| (g * per, s))
        .collect();
    run_groups(groups, seal_range)
}

/// Decrypts a body with up to `workers` threads into `out` (replacing its contents, reusing its
/// allocation). On error `out` is wiped and emptied.
pub(crate) fn open_into(session: &Session, body: &[u8], workers: usize, out: &mut Vec<u8>) -> Result<()> {
    let c = session.chunk_size();
    let full = c + TAG_LEN;
    let pt_len = usize::try_from(session.header().plaintext_len(body.len() as u64)?)
        .map_err(|_| StreamError::LimitExceeded("stream larger than memory"))?;
    let n = body.len().div_ceil(full);
    size_to(out, pt_len);
    // Each group is (first chunk, chunk count, its plaintext); every chunk of the body is opened.
    // Each chunk is opened straight from `body` into its place in `out` (one pass over memory on
    // engines with an out-of-place open).
    let open_range = |(first, count, outs): (usize, usize, &mut [u8])| -> Result<()> {
        let mut outs = outs;
        for i in first..first + count {
            let ct = &body[i * full..((i + 1) * full).min(body.len())];
            let (dst, rest) = std::mem::take(&mut outs).split_at_mut(ct.len().saturating_sub(TAG_LEN));
            session.open_to_diagnosed(i as u64, i + 1 == n, ct, dst)?;
            outs = rest;
        }
        Ok(())
    };
    let w = workers.clamp(1, n);
    let per = n.div_ceil(w);
    let mut groups: Vec<(usize, usize, &mut [u8])> = Vec::with_capacity(w);
    let mut rest = &mut out[..];
    let mut first = 0;
    while first < n {
        let count = per.min(n - first);
        let take = (count * c).min(rest.len());
        let (g, r) = std::mem::take(&mut rest).split_at_mut(take);
        groups.push((first, count, g));
        rest = r;
        first += count;
    }
    let res = run_groups(groups, open_range);
    if let Err(e) = res {
        zeroize::Zeroize::zeroize(out);
        return Err(e);
    }
    Ok(())
}

/// Fills `buf` with up to `size` bytes from `r` (after a carried lookahead byte) and says whether
/// this is the last unit of the input.
fn fill_unit<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    size: usize,
    lookahead: &mut Option<u8>,
) -> Result<bool> {
    // Read one byte more than a unit in the same call, so telling "last" costs no extra read.
    buf.resize(size + 1, 0);
    let mut filled = 0;
    if let Some(b) = lookahead.take() {
        buf[0] = b;
        filled = 1;
    }
    filled += read_full(r, &mut buf[filled..])?;
    if filled > size {
        *lookahead = Some(buf[size]);
        buf.truncate(size);
        Ok(false)
    } else {
        buf.truncate(filled);
        Ok(true)
    }
}

type Job<'a> = dyn Fn(u64, bool, &mut Vec<u8>) -> Result<()> + Sync + 'a;

/// Reads units of `unit` bytes from `r`, runs `job` on each (in parallel when `workers > 1`) and
/// writes the results to `w` in order. Returns the number of units' input bytes.
fn pipeline<R: Read + Send, W: Write>(
    mut r: R,
    mut w: W,
    unit: usize,
    workers: usize,
    job: &Job<'_>,
) -> Result<u64> {
    let mut read_total = 0u64;
    if workers <= 1 {
        let mut buf = Zeroizing::new(Vec::with_capacity(unit + TAG_LEN + 1));
        let mut la = None;
        let mut index = 0u64;
        loop {
            let last = fill_unit(&mut r, &mut buf, unit, &mut la)?;
            read_total += buf.len() as u64;
            job(index, last, &mut buf)?;
            w.write_all(&buf)?;
            if last {
                break;
            }
            index += 1;
        }
        w.flush()?;
        return Ok(read_total);
    }

    let depth = workers * 2;
    let (free_tx, free_rx) = mpsc::sync_channel::<Zeroizing<Vec<u8>>>(depth);
    for _ in 0..depth {
        // Cannot fail: the channel has room for `depth` buffers.
        let _ = free_tx.try_send(Zeroizing::new(Vec::with_capacity(unit + TAG_LEN + 1)));
    }
    let (work_tx, work_rx) = mpsc::sync_channel::<(u64, bool, Zeroizing<Vec<u8>>)>(depth);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(u64, bool, Result<()>, Zeroizing<Vec<u8>>)>();
    let read_error: Mutex<Option<StreamError>> = Mutex::new(None);

    std::thread::scope(|s| {
        let read_error = &read_error;
        let reader = s.spawn(move || {
            let mut la = None;
            let mut index = 0u64;
            let mut total = 0u64;
            while let Ok(mut buf) = free_rx.recv() {
                match fill_unit(&mut r, &mut buf, unit, &mut la) {
                    Ok(last) => {
                        total += buf.len() as u64;
                        if work_tx.send((index, last, buf)).is_err() || last {
                            break;
                        }
                        index += 1;
                    }
                    Err(e) => {
                        *read_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                        break;
                    }
                }
            }
            total
        });
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            s.spawn(move || {
                loop {
                    let item = work_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((i, last, mut buf)) = item else { break };
                    let res = job(i, last, &mut buf);
                    if done_tx.send((i, last, res, buf)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);

        let mut result: Result<()> = Err(StreamError::Truncated);
        let mut pending = BTreeMap::new();
        let mut expected = 0u64;
        'outer: while let Ok((i, last, res, buf)) = done_rx.recv() {
            pending.insert(i, (last, res, buf));
            while let Some((last, res, buf)) = pending.remove(&expected) {
                if let Err(e) = res {
                    result = Err(e);
                    break 'outer;
                }
                if let Err(e) = w.write_all(&buf) {
                    result = Err(StreamError::from_io(e));
                    break 'outer;
                }
                if last {
                    result = Ok(());
                    break 'outer;
                }
                let _ = free_tx.send(buf);
                expected += 1;
            }
        }
        // Stop the reader and the workers: no more free buffers, no more results wanted.
        drop(free_tx);
        drop(done_rx);
        let total = reader.join().unwrap_or(0);
        if let Some(e) = read_error.lock().unwrap_or_else(PoisonError::into_inner).take() {
            if result.is_ok() || matches!(result, Err(StreamError::Truncated)) {
                result = Err(e);
            }
        }
        result?;
        w.flush()?;
        read_total = total;
        Ok(read_total)
    })
}

/// Encrypts `r` into `w` (header ‖ body). Returns the plaintext length.
pub(crate) fn seal_stream<R: Read + Send, W: Write>(
    session: &Session,
    r: R,
    mut w: W,
    workers: usize,
) -> Result<u64> {
    w.write_all(&session.header().to_bytes())?;
    let job = |i: u64, last: bool, buf: &mut Vec<u8>| -> Result<()> {
        let tag = session.seal(i, last, &mut buf[..])?;
        buf.extend_from_slice(&tag);
        Ok(())
    };
    pipeline(r, w, session.chunk_size(), workers, &job)
}

/// Decrypts a body from `r` into `w`. Returns the plaintext length.
pub(crate) fn open_stream<R: Read + Send, W: Write>(
    session: &Session,
    r: R,
    w: W,
    workers: usize,
) -> Result<u64> {
    let full = session.chunk_size() + TAG_LEN;
    let job = |i: u64, last: bool, buf: &mut Vec<u8>| -> Result<()> {
        if last && buf.len() < TAG_LEN {
            return Err(StreamError::Truncated);
        }
        let retry = (last && buf.len() == full).then(|| Zeroizing::new(buf.to_vec()));
        session.open_diagnosed(i, last, buf, retry.as_deref().map(|v| &v[..]))
    };
    let ct_total = pipeline(r, w, full, workers, &job)?;
    let n = ct_total.div_ceil(full as u64).max(1);
    Ok(ct_total - n * TAG_LEN as u64)
}
