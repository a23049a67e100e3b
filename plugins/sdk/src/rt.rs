//! What the generated exports call. Not public API: use the attributes.
//!
//! Soundness does not rest on the host: every pointer the host passes must lie inside the one
//! exchange buffer this module handed out through `sluice_alloc`, and input and output must
//! not overlap; anything else is refused with a non-zero status before a slice is made.

use std::cell::{OnceCell, RefCell};
use std::thread::LocalKey;

use crate::record::{encode_record, parse};
use crate::{FromParams, Mapped, Params, Record};

/// `sluice_kind` of a filter.
pub const KIND_FILTER: i32 = 1;
/// `sluice_kind` of a partitioner.
pub const KIND_PARTITIONER: i32 = 2;
/// `sluice_kind` of a map (ABI version 2).
pub const KIND_MAP: i32 = 3;

/// Status: `sluice_init` refused its params (the message says why).
pub const STATUS_INIT_FAILED: i32 = 1;
/// Status: the host's pointers or input do not follow the ABI.
pub const STATUS_BAD_INPUT: i32 = 2;
/// Status: called before a successful `sluice_init`.
pub const STATUS_NOT_INITIALISED: i32 = 3;

/// Where a plugin keeps its state (wasm32 has one thread: this is a plain static there).
pub type State<T> = LocalKey<OnceCell<T>>;

thread_local! {
    /// The exchange buffer; u64 words so it is 8-aligned.
    static BUFFER: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// The message of the last failure, for `sluice_error_ptr`/`sluice_error_len`.
    static ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    /// A map's output records, kept until the next call.
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `sluice_alloc`: a zeroed buffer of at least `size` bytes, replacing the previous one; 0 if
/// memory is short.
pub fn alloc(size: i32) -> i32 {
    let Ok(size) = usize::try_from(size) else {
        return 0;
    };
    let words = size.div_ceil(8);
    BUFFER.with_borrow_mut(|buf| {
        if buf.len() < words {
            *buf = Vec::new();
            let mut fresh = Vec::new();
            if fresh.try_reserve_exact(words).is_err() {
                return 0;
            }
            fresh.resize(words, 0);
            *buf = fresh;
        }
        buf.as_mut_ptr().expose_provenance() as i32
    })
}

/// Records `message` as the last failure's.
pub fn set_error(message: impl Into<String>) {
    let message = message.into();
    ERROR.with_borrow_mut(|e| *e = message);
}

fn clear_error() {
    ERROR.with_borrow_mut(String::clear);
}

/// `sluice_error_ptr`.
pub fn error_ptr() -> i32 {
    ERROR.with_borrow(|e| e.as_ptr().expose_provenance() as i32)
}

/// `sluice_error_len`.
pub fn error_len() -> i32 {
    ERROR.with_borrow(|e| e.len() as i32)
}

/// Runs `f` over the buffer's bytes `ptr..ptr + len` as a slice, if they lie inside it.
fn with_input<R>(ptr: i32, len: i32, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let (start, len) = (ptr as u32 as usize, usize::try_from(len).ok()?);
    BUFFER.with_borrow(|buf| {
        let base = buf.as_ptr().expose_provenance();
        let offset = start.checked_sub(base)?;
        let bytes: &[u8] = bytes_of(buf);
        Some(f(bytes.get(offset..offset.checked_add(len)?)?))
    })
}

fn bytes_of(words: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and u8 no alignment; the length is in bytes.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

fn bytes_of_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as `bytes_of`; the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

/// Splits the buffer into the input `in_ptr..+in_len` and the output `out_ptr..+out_len`,
/// which must be inside it and disjoint, and runs `f` on them.
fn with_io<R>(
    (in_ptr, in_len): (i32, usize),
    (out_ptr, out_len): (i32, usize),
    f: impl FnOnce(&[u8], &mut [u8]) -> R,
) -> Option<R> {
    BUFFER.with_borrow_mut(|buf| {
        let base = buf.as_ptr().expose_provenance();
        let input_at = (in_ptr as u32 as usize).checked_sub(base)?;
        let out_at = (out_ptr as u32 as usize).checked_sub(base)?;
        let input_end = input_at.checked_add(in_len)?;
        let out_end = out_at.checked_add(out_len)?;
        let bytes = bytes_of_mut(buf);
        if input_end > bytes.len() || out_end > bytes.len() {
            return None;
        }
        if out_len == 0 {
            return Some(f(&bytes[input_at..input_end], &mut []));
        }
        if in_len == 0 {
            return Some(f(&[], &mut bytes[out_at..out_end]));
        }
        if input_end <= out_at {
            let (head, tail) = bytes.split_at_mut(out_at);
            Some(f(&head[input_at..input_end], &mut tail[..out_len]))
        } else if out_end <= input_at {
            let (head, tail) = bytes.split_at_mut(input_at);
            Some(f(&tail[..in_len], &mut head[out_at..out_end]))
        } else {
            None
        }
    })
}

/// `sluice_init`: decodes the params and builds the state once.
pub fn init<T: FromParams>(state: &'static State<T>, ptr: i32, len: i32) -> i32 {
    clear_error();
    std::panic::set_hook(Box::new(|info| set_error(format!("{info}"))));
    let params = match with_input(ptr, len, Params::decode) {
        Some(Ok(params)) => params,
        Some(Err(e)) => {
            set_error(e.message());
            return STATUS_BAD_INPUT;
        }
        None => {
            set_error("sluice_init: params outside the sluice_alloc buffer");
            return STATUS_BAD_INPUT;
        }
    };
    match T::from_params(&params) {
        Ok(value) => state.with(|cell| {
            // A second init keeps the first state: the ABI calls it once per instance.
            let _ = cell.set(value);
            0
        }),
        Err(e) => {
            set_error(e.message());
            STATUS_INIT_FAILED
        }
    }
}

/// `sluice_filter`: one byte per record, 1 keep, 0 drop.
pub fn filter<T: 'static>(
    state: &'static State<T>,
    (input_ptr, input_len, count, out_ptr): (i32, i32, i32, i32),
    keep: impl Fn(&Record<'_>, &T) -> bool,
) -> i32 {
    clear_error();
    let (Ok(input_len), Ok(count)) = (usize::try_from(input_len), usize::try_from(count)) else {
        return bad_input("negative length or count");
    };
    state.with(|cell| {
        let Some(state) = cell.get() else {
            set_error("sluice_filter called before sluice_init");
            return STATUS_NOT_INITIALISED;
        };
        let run = with_io(
            (input_ptr, input_len),
            (out_ptr, count),
            |mut input, out| {
                for slot in out.iter_mut() {
                    let Some((record, rest)) = parse(input) else {
                        return bad_input(MALFORMED);
                    };
                    *slot = u8::from(keep(&record, state));
                    input = rest;
                }
                0
            },
        );
        run.unwrap_or_else(|| bad_input("input or output outside the sluice_alloc buffer"))
    })
}

/// `sluice_partition`: one u32 per record, below `partitions`.
pub fn partition<T: 'static>(
    state: &'static State<T>,
    (input_ptr, input_len, count, partitions, out_ptr): (i32, i32, i32, i32, i32),
    route: impl Fn(&Record<'_>, u32, &T) -> u32,
) -> i32 {
    clear_error();
    let (Ok(input_len), Ok(count), Ok(partitions)) = (
        usize::try_from(input_len),
        usize::try_from(count),
        u32::try_from(partitions),
    ) else {
        return bad_input("negative length, count or partition count");
    };
    let Some(out_len) = count.checked_mul(4) else {
        return bad_input("record count too large");
    };
    state.with(|cell| {
        let Some(state) = cell.get() else {
            set_error("sluice_partition called before sluice_init");
            return STATUS_NOT_INITIALISED;
        };
        let run = with_io(
            (input_ptr, input_len),
            (out_ptr, out_len),
            |mut input, out| {
                for slot in out.chunks_exact_mut(4) {
                    let Some((record, rest)) = parse(input) else {
                        return bad_input(MALFORMED);
                    };
                    slot.copy_from_slice(&route(&record, partitions, state).to_le_bytes());
                    input = rest;
                }
                0
            },
        );
        run.unwrap_or_else(|| bad_input("input or output outside the sluice_alloc buffer"))
    })
}

/// `sluice_map`: writes the rewritten records (in the record layout, one per input record,
/// same offsets and timestamps) to a buffer of its own and the (ptr, len) of it at `out_ptr`.
pub fn map<T: 'static>(
    state: &'static State<T>,
    (input_ptr, input_len, count, out_ptr): (i32, i32, i32, i32),
    rewrite: impl Fn(&Record<'_>, &T) -> Mapped,
) -> i32 {
    clear_error();
    let (Ok(input_len), Ok(count)) = (usize::try_from(input_len), usize::try_from(count)) else {
        return bad_input("negative length or count");
    };
    state.with(|cell| {
        let Some(state) = cell.get() else {
            set_error("sluice_map called before sluice_init");
            return STATUS_NOT_INITIALISED;
        };
        let run = with_io((input_ptr, input_len), (out_ptr, 8), |mut input, out| {
            OUTPUT.with_borrow_mut(|output| {
                output.clear();
                for _ in 0..count {
                    let Some((record, rest)) = parse(input) else {
                        return bad_input(MALFORMED);
                    };
                    let mapped = rewrite(&record, state);
                    let mut headers: Vec<(&[u8], Option<&[u8]>)> =
                        Vec::with_capacity(mapped.headers_list().len());
                    headers.extend(
                        mapped
                            .headers_list()
                            .iter()
                            .map(|(n, v)| (n.as_slice(), v.as_deref())),
                    );
                    encode_record(
                        output,
                        record.offset(),
                        record.timestamp(),
                        mapped.key_bytes(),
                        mapped.value_bytes(),
                        &headers,
                    );
                    input = rest;
                }
                let Ok(len) = u32::try_from(output.len()) else {
                    set_error("map output larger than 4 GiB");
                    return STATUS_BAD_INPUT;
                };
                let ptr = output.as_ptr().expose_provenance() as u32;
                out[0..4].copy_from_slice(&ptr.to_le_bytes());
                out[4..8].copy_from_slice(&len.to_le_bytes());
                0
            })
        });
        run.unwrap_or_else(|| bad_input("input or output outside the sluice_alloc buffer"))
    })
}

const MALFORMED: &str = "malformed record input from the host, or fewer records than announced";

fn bad_input(message: &str) -> i32 {
    set_error(message);
    STATUS_BAD_INPUT
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode_record;

    thread_local! {
        static STATE: OnceCell<Params> = const { OnceCell::new() };
    }

    /// Emulates the host on a 64-bit machine: only possible where pointers fit in i32, so
    /// this checks the guard rails rather than a full call.
    #[test]
    fn refuses_pointers_outside_the_buffer() {
        assert_eq!(alloc(-1), 0);
        let status = filter(&STATE, (0, 10, 1, 0), |_, _| true);
        assert_ne!(status, 0);
        assert!(ERROR.with_borrow(|e| !e.is_empty()));
        let mut input = Vec::new();
        encode_record(&mut input, 0, 0, None, None, &[]);
        assert_eq!(input.len(), 32);
    }
}
