//! One sandboxed instance: its store (memory limiter, epoch deadline), its exports, its
//! exchange buffer in guest memory, and the loop that writes records into it.

use std::sync::Arc;

use sluice_record::{Batch, HEADER_LEN, RecordError};
use wasmtime::{Memory, ResourceLimiter, Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::abi::{self, EntryHead, PluginKind, align8};
use crate::error::{During, PluginError};
use crate::plugin::PluginShared;
use crate::{RecordInput, scan};

/// Largest table a plugin may grow to, in elements.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Buffers from `sluice_alloc` are asked for in multiples of this.
const BUFFER_GRANULE: usize = 64 * 1024;
/// Most bytes of map output (in the ABI record layout) one operation may collect.
pub const MAX_MAP_OUTPUT_BYTES: usize = 32 << 20;

/// What a store carries: the memory limiter.
pub(crate) struct State {
    limiter: Limiter,
}

/// Caps memory and tables; remembers a refused memory growth so a later failure can be
/// reported as what it is.
struct Limiter {
    max_memory_bytes: usize,
    denied_bytes: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.denied_bytes = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// A store with one instantiated module: runs calls under the deadline and turns failures into
/// [`PluginError`]s.
pub(crate) struct Sandbox {
    pub shared: Arc<PluginShared>,
    store: Store<State>,
    instance: wasmtime::Instance,
    memory: Memory,
    /// Set once the instance trapped, timed out or misbehaved: it is not reused.
    pub poisoned: bool,
}

impl Sandbox {
    /// Instantiates the plugin (running its start function, if any, under the deadline).
    pub fn new(shared: &Arc<PluginShared>, during: During) -> Result<Sandbox, PluginError> {
        let mut store = Store::new(
            &shared.host.engine,
            State {
                limiter: Limiter {
                    max_memory_bytes: shared.limits.max_memory_bytes,
                    denied_bytes: None,
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(shared.deadline_ticks);
        let instance = match shared.instance_pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => return Err(classify(shared, &mut store, None, e, during)),
        };
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| engine_error(shared, during, "the `memory` export is not a memory"))?;
        Ok(Sandbox {
            shared: shared.clone(),
            store,
            instance,
            memory,
            poisoned: false,
        })
    }

    /// A typed export, checked at upload.
    pub fn typed<P: WasmParams, R: WasmResults>(
        &mut self,
        export: &str,
    ) -> Result<TypedFunc<P, R>, PluginError> {
        self.instance
            .get_typed_func::<P, R>(&mut self.store, export)
            .map_err(|e| engine_error(&self.shared, During::Start, &format!("{e:#}")))
    }

    /// Calls a `() -> i32` export (version, kind).
    pub fn call_i32(&mut self, export: &str) -> Result<i32, PluginError> {
        let f = self.typed::<(), i32>(export)?;
        self.call(&f, (), During::Start)
    }

    /// Calls `f` under a fresh deadline.
    pub fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        f: &TypedFunc<P, R>,
        args: P,
        during: During,
    ) -> Result<R, PluginError> {
        self.store.set_epoch_deadline(self.shared.deadline_ticks);
        self.store.data_mut().limiter.denied_bytes = None;
        match f.call(&mut self.store, args) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.poisoned = true;
                Err(classify(
                    &self.shared,
                    &mut self.store,
                    Some((self.instance, self.memory)),
                    e,
                    during,
                ))
            }
        }
    }

    /// The error for a call that returned a non-zero status.
    pub fn failed(&mut self, code: i32, during: During) -> PluginError {
        if let Some(requested_bytes) = self.store.data_mut().limiter.denied_bytes.take() {
            return memory_limit(&self.shared, during, requested_bytes);
        }
        PluginError::Failed {
            plugin: self.shared.info.name.clone(),
            during,
            code,
            message: guest_message(&self.shared, &mut self.store, self.instance, self.memory),
        }
    }

    /// Takes the record of a refused memory growth since the last call.
    fn take_denied(&mut self) -> Option<usize> {
        self.store.data_mut().limiter.denied_bytes.take()
    }
}

fn engine_error(shared: &PluginShared, during: During, reason: &str) -> PluginError {
    PluginError::Engine {
        plugin: shared.info.name.clone(),
        during,
        reason: reason.to_string(),
    }
}

fn memory_limit(shared: &PluginShared, during: During, requested_bytes: usize) -> PluginError {
    PluginError::MemoryLimit {
        plugin: shared.info.name.clone(),
        during,
        requested_bytes,
        limit_bytes: shared.limits.max_memory_bytes,
    }
}

/// Turns a failed call or instantiation into a [`PluginError`].
fn classify(
    shared: &PluginShared,
    store: &mut Store<State>,
    instance: Option<(wasmtime::Instance, Memory)>,
    e: wasmtime::Error,
    during: During,
) -> PluginError {
    let denied = store.data_mut().limiter.denied_bytes.take();
    let plugin = shared.info.name.clone();
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout {
            plugin,
            timeout_ms: shared.limits.call_timeout_ms,
            during,
        },
        _ if denied.is_some() => memory_limit(shared, during, denied.unwrap_or_default()),
        Some(trap) => {
            let trap = trap.to_string();
            let message = instance
                .and_then(|(instance, memory)| guest_message(shared, store, instance, memory));
            PluginError::Trap {
                plugin,
                during,
                trap,
                message,
            }
        }
        None => PluginError::Engine {
            plugin,
            during,
            reason: format!("{e:#}"),
        },
    }
}

/// The guest's message from `sluice_error_ptr`/`sluice_error_len`, if it exports them and left
/// one; at most [`abi::MAX_ERROR_MESSAGE_LEN`] bytes, lossily decoded.
fn guest_message(
    shared: &PluginShared,
    store: &mut Store<State>,
    instance: wasmtime::Instance,
    memory: Memory,
) -> Option<String> {
    let ptr_f = instance
        .get_typed_func::<(), i32>(&mut *store, abi::EXPORT_ERROR_PTR)
        .ok()?;
    let len_f = instance
        .get_typed_func::<(), i32>(&mut *store, abi::EXPORT_ERROR_LEN)
        .ok()?;
    store.set_epoch_deadline(shared.deadline_ticks);
    let ptr = ptr_f.call(&mut *store, ()).ok()? as u32 as usize;
    let len = (len_f.call(&mut *store, ()).ok()? as u32 as usize).min(abi::MAX_ERROR_MESSAGE_LEN);
    let bytes = memory.data(&*store).get(ptr..ptr.checked_add(len)?)?;
    let message = String::from_utf8_lossy(bytes).trim().to_string();
    (!message.is_empty()).then_some(message)
}

/// The kind-specific entry point.
#[derive(Clone)]
enum Entry {
    Filter(TypedFunc<(i32, i32, i32, i32), i32>),
    Partition(TypedFunc<(i32, i32, i32, i32, i32), i32>),
    Map(TypedFunc<(i32, i32, i32, i32), i32>),
}

/// A pooled, initialised instance of a filter or partitioner.
///
/// Records are written into the exchange buffer (obtained once from `sluice_alloc`, regrown
/// only for a record larger than it) as a "chunk"; when the next record would push the chunk
/// past [`crate::Limits::max_call_bytes`], the chunk is handed to the guest in one call and
/// its answers appended to `keep` or `routes`.
pub(crate) struct Instance {
    sb: Sandbox,
    kind: PluginKind,
    alloc: TypedFunc<i32, i32>,
    entry: Entry,
    buf_ptr: usize,
    buf_cap: usize,
    chunk_len: usize,
    chunk_count: usize,
    /// Offsets of the records in the current chunk, for error messages.
    offsets: Vec<i64>,
    /// A partitioner's current partition count.
    partitions: u32,
    /// Filter answers, one per record, appended by each call.
    pub keep: Vec<bool>,
    /// Partitioner answers, one per record, appended by each call.
    pub routes: Vec<u32>,
    /// Map answers: one entry per record in the ABI record layout, checked, appended by each
    /// call (at most [`MAX_MAP_OUTPUT_BYTES`]).
    pub mapped: Vec<u8>,
}

impl Instance {
    /// Instantiates and initialises one instance with encoded params.
    pub fn new(shared: &Arc<PluginShared>, params: &[u8]) -> Result<Instance, PluginError> {
        let mut sb = Sandbox::new(shared, During::Start)?;
        let kind = shared.info.kind;
        let alloc = sb.typed::<i32, i32>(abi::EXPORT_ALLOC)?;
        let init = sb.typed::<(i32, i32), i32>(abi::EXPORT_INIT)?;
        let entry = match kind {
            PluginKind::Filter => Entry::Filter(sb.typed(abi::EXPORT_FILTER)?),
            PluginKind::Partitioner => Entry::Partition(sb.typed(abi::EXPORT_PARTITION)?),
            PluginKind::Map => Entry::Map(sb.typed(abi::EXPORT_MAP)?),
        };
        let mut inst = Instance {
            sb,
            kind,
            alloc,
            entry,
            buf_ptr: 0,
            buf_cap: 0,
            chunk_len: 0,
            chunk_count: 0,
            offsets: Vec::new(),
            partitions: 0,
            keep: Vec::new(),
            routes: Vec::new(),
            mapped: Vec::new(),
        };
        inst.grow(shared.limits.max_call_bytes.max(params.len()))?;
        let ptr = inst.buf_ptr;
        let memory = inst.sb.memory;
        memory.data_mut(&mut inst.sb.store)[ptr..ptr + params.len()].copy_from_slice(params);
        let status = inst.sb.call(
            &init,
            (ptr as u32 as i32, params.len() as u32 as i32),
            During::Init,
        )?;
        if status != 0 {
            return Err(inst.sb.failed(status, During::Init));
        }
        Ok(inst)
    }

    pub fn shared(&self) -> &Arc<PluginShared> {
        &self.sb.shared
    }

    /// Whether the instance must be thrown away.
    pub fn is_poisoned(&self) -> bool {
        self.sb.poisoned
    }

    /// Forgets any half-built chunk and answers (after an error, or before a new operation).
    pub fn reset(&mut self, partitions: u32) {
        self.chunk_len = 0;
        self.chunk_count = 0;
        self.offsets.clear();
        self.keep.clear();
        self.routes.clear();
        self.mapped.clear();
        self.partitions = partitions;
    }

    /// Asks the guest for a buffer of at least `min_bytes`, growing geometrically.
    fn grow(&mut self, min_bytes: usize) -> Result<(), PluginError> {
        let limit = self.sb.shared.limits.max_memory_bytes;
        if min_bytes > limit {
            return Err(memory_limit(&self.sb.shared, During::Alloc, min_bytes));
        }
        let size = min_bytes
            .max(self.buf_cap.saturating_mul(2))
            .next_multiple_of(BUFFER_GRANULE)
            .min(limit);
        let alloc = self.alloc.clone();
        let ptr = self.sb.call(&alloc, size as u32 as i32, During::Alloc)?;
        if ptr == 0 {
            self.sb.poisoned = true;
            if let Some(requested) = self.sb.take_denied() {
                return Err(memory_limit(&self.sb.shared, During::Alloc, requested));
            }
        }
        let start = ptr as u32 as usize;
        let fits = start != 0
            && start
                .checked_add(size)
                .is_some_and(|end| end <= self.sb.memory.data_size(&self.sb.store));
        if !fits {
            self.sb.poisoned = true;
            return Err(PluginError::BadBuffer {
                plugin: self.sb.shared.info.name.clone(),
                size,
                ptr,
            });
        }
        self.buf_ptr = start;
        self.buf_cap = size;
        Ok(())
    }

    /// Bytes the chunk may fill, given whether it is empty.
    fn room(&self) -> usize {
        if self.chunk_count == 0 {
            self.buf_cap
        } else {
            self.buf_cap.min(self.sb.shared.limits.max_call_bytes)
        }
    }

    /// Whether an entry of `need` bytes fits after the current chunk, with room for answers.
    fn fits(&self, need: usize) -> bool {
        let out = (self.chunk_count + 1) * self.kind.out_len() + self.kind.out_fixed();
        align8(self.chunk_len + need) + out <= self.room()
    }

    /// Makes room for an entry of `need` bytes: runs the chunk, or grows an empty one's buffer.
    fn make_room(&mut self, need: usize) -> Result<(), PluginError> {
        if self.chunk_count > 0 {
            self.flush()
        } else {
            let out = self.kind.out_len() + self.kind.out_fixed();
            self.grow(align8(need) + out)
        }
    }

    /// Appends the records of `batch` (found at byte `position` of the caller's input),
    /// running full chunks on the way. Returns the number of records.
    pub fn push_batch(&mut self, batch: &Batch<'_>, position: usize) -> Result<usize, PluginError> {
        let header = *batch.header();
        let shared = self.sb.shared.clone();
        let invalid = |source: RecordError| PluginError::InvalidBatch {
            plugin: shared.info.name.clone(),
            position,
            source,
        };
        if header.compression() != 0 {
            return Err(invalid(RecordError::Compressed(header.compression())));
        }
        let declared = usize::try_from(header.record_count).unwrap_or(usize::MAX);
        let append_time = header.is_log_append_time().then_some(header.max_timestamp);
        let bytes = batch.as_bytes();
        let out_len = self.kind.out_len();
        let out_fixed = self.kind.out_fixed();
        let max_call_bytes = shared.limits.max_call_bytes;
        let memory = self.sb.memory;
        let mut pos = HEADER_LEN;
        let mut pushed = 0;
        loop {
            let capped = self.buf_cap.min(max_call_bytes);
            let mem = memory.data_mut(&mut self.sb.store);
            // In bounds: `grow` checked the buffer against the memory, which never shrinks.
            let buf = &mut mem[self.buf_ptr..self.buf_ptr + self.buf_cap];
            let need = loop {
                if pos >= bytes.len() {
                    if pushed == declared {
                        return Ok(pushed);
                    }
                    return Err(invalid(scan::precise_error(batch)));
                }
                let Some((record, next)) = scan::record(bytes, pos).filter(|_| pushed < declared)
                else {
                    return Err(invalid(scan::precise_error(batch)));
                };
                let head = EntryHead {
                    offset: header
                        .base_offset
                        .wrapping_add(i64::from(record.offset_delta)),
                    timestamp: append_time.unwrap_or_else(|| {
                        header.base_timestamp.wrapping_add(record.timestamp_delta)
                    }),
                    key: record.key.map(<[u8]>::len),
                    value: record.value.map(<[u8]>::len),
                    headers_count: record.headers_count as usize,
                    headers_len: record.headers_len,
                };
                let need = head.entry_len();
                let end = self.chunk_len + need;
                let room = if self.chunk_count == 0 {
                    self.buf_cap
                } else {
                    capped
                };
                if align8(end) + (self.chunk_count + 1) * out_len + out_fixed > room {
                    break need;
                }
                abi::write_entry(
                    &mut buf[self.chunk_len..end],
                    &head,
                    record.key,
                    record.value,
                    scan::KafkaHeaders::new(&record),
                );
                self.offsets.push(head.offset);
                self.chunk_len = end;
                self.chunk_count += 1;
                pushed += 1;
                pos = next;
            };
            self.make_room(need)?;
        }
    }

    /// Appends one record, running the chunk first if it is full.
    pub fn push_input(&mut self, record: &RecordInput<'_>) -> Result<(), PluginError> {
        let too_long = |what: &str| PluginError::InvalidInput {
            plugin: self.sb.shared.info.name.clone(),
            reason: format!(
                "record {} has a {what} longer than i32::MAX bytes",
                record.offset
            ),
        };
        let len_ok = |b: Option<&[u8]>| b.is_none_or(|b| b.len() <= i32::MAX as usize);
        if !len_ok(record.key) {
            return Err(too_long("key"));
        }
        if !len_ok(record.value) {
            return Err(too_long("value"));
        }
        let headers_len = abi::headers_len(record.headers.iter().copied());
        if headers_len > i32::MAX as usize || record.headers.len() > i32::MAX as usize {
            return Err(too_long("headers section"));
        }
        let head = EntryHead {
            offset: record.offset,
            timestamp: record.timestamp,
            key: record.key.map(<[u8]>::len),
            value: record.value.map(<[u8]>::len),
            headers_count: record.headers.len(),
            headers_len,
        };
        let need = head.entry_len();
        while !self.fits(need) {
            self.make_room(need)?;
        }
        let (start, end) = (
            self.buf_ptr + self.chunk_len,
            self.buf_ptr + self.chunk_len + need,
        );
        let memory = self.sb.memory;
        abi::write_entry(
            &mut memory.data_mut(&mut self.sb.store)[start..end],
            &head,
            record.key,
            record.value,
            record.headers.iter().copied(),
        );
        self.offsets.push(head.offset);
        self.chunk_len += need;
        self.chunk_count += 1;
        Ok(())
    }

    /// Hands the current chunk to the guest and appends its answers.
    pub fn flush(&mut self) -> Result<(), PluginError> {
        let count = self.chunk_count;
        if count == 0 {
            return Ok(());
        }
        let during = During::Records {
            first_offset: self.offsets.first().copied().unwrap_or_default(),
            last_offset: self.offsets.last().copied().unwrap_or_default(),
        };
        let input_ptr = self.buf_ptr;
        let input_len = self.chunk_len;
        let out_ptr = input_ptr + align8(input_len);
        let out_len = count * self.kind.out_len() + self.kind.out_fixed();
        let args = (
            input_ptr as u32 as i32,
            input_len as u32 as i32,
            count as u32 as i32,
        );
        let status = match self.entry.clone() {
            Entry::Filter(f) => {
                self.sb
                    .call(&f, (args.0, args.1, args.2, out_ptr as u32 as i32), during)
            }
            Entry::Map(f) => {
                self.sb
                    .call(&f, (args.0, args.1, args.2, out_ptr as u32 as i32), during)
            }
            Entry::Partition(f) => self.sb.call(
                &f,
                (
                    args.0,
                    args.1,
                    args.2,
                    self.partitions as i32,
                    out_ptr as u32 as i32,
                ),
                during,
            ),
        };
        self.sb.shared.stats.record_call(count);
        self.chunk_len = 0;
        self.chunk_count = 0;
        let status = status?;
        if status != 0 {
            self.offsets.clear();
            return Err(self.sb.failed(status, during));
        }
        let mem = self.sb.memory.data(&self.sb.store);
        // In bounds: the answers sit inside the buffer (`fits` reserved them).
        let out = &mem[out_ptr..out_ptr + out_len];
        let result = match self.kind {
            PluginKind::Map => {
                let (first_offset, last_offset) = match during {
                    During::Records {
                        first_offset,
                        last_offset,
                    } => (first_offset, last_offset),
                    _ => (0, 0),
                };
                let bad = |reason: String| PluginError::BadMapAnswer {
                    plugin: self.sb.shared.info.name.clone(),
                    first_offset,
                    last_offset,
                    reason,
                };
                let ptr = u32::from_le_bytes(out[0..4].try_into().expect("8 bytes")) as usize;
                let len = u32::from_le_bytes(out[4..8].try_into().expect("8 bytes")) as usize;
                match mem.get(ptr..ptr.saturating_add(len)) {
                    None => Err(bad(format!(
                        "its output at {ptr}..{} is outside its {}-byte memory",
                        ptr.saturating_add(len),
                        mem.len()
                    ))),
                    Some(_) if self.mapped.len() + len > MAX_MAP_OUTPUT_BYTES => Err(bad(format!(
                        "{} bytes of output in all, over the {MAX_MAP_OUTPUT_BYTES}-byte limit",
                        self.mapped.len() + len
                    ))),
                    Some(output) => {
                        let mut pos = 0;
                        let mut checked = Ok(());
                        for (i, &offset) in self.offsets.iter().enumerate() {
                            match abi::read_entry(output, pos) {
                                Err(e) => {
                                    checked = Err(bad(format!("entry {i}: {e}")));
                                    break;
                                }
                                Ok(v) if v.offset != offset => {
                                    checked = Err(bad(format!(
                                        "entry {i} has offset {}, but it answers the record at offset {offset}",
                                        v.offset
                                    )));
                                    break;
                                }
                                Ok(v) => pos = v.next,
                            }
                        }
                        match checked {
                            Ok(()) if pos != output.len() => Err(bad(format!(
                                "{} bytes follow the {count} entries",
                                output.len() - pos
                            ))),
                            Ok(()) => {
                                self.mapped.extend_from_slice(output);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            }
            PluginKind::Filter => {
                if let Some(i) = out.iter().position(|&b| b > 1) {
                    Err(PluginError::BadFilterAnswer {
                        plugin: self.sb.shared.info.name.clone(),
                        offset: self.offsets[i],
                        value: out[i],
                    })
                } else {
                    self.keep.extend(out.iter().map(|&b| b != 0));
                    Ok(())
                }
            }
            PluginKind::Partitioner => {
                let partitions = self.partitions;
                let before = self.routes.len();
                self.routes.extend(
                    out.chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                match self.routes[before..].iter().position(|&p| p >= partitions) {
                    None => Ok(()),
                    Some(i) => Err(PluginError::PartitionOutOfRange {
                        plugin: self.sb.shared.info.name.clone(),
                        offset: self.offsets[i],
                        partition: self.routes[before + i],
                        partitions,
                    }),
                }
            }
        };
        self.offsets.clear();
        result
    }
}
