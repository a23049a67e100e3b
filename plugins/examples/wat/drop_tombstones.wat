;; A filter written by hand in the WebAssembly text format, against plugin ABI v1
;; (docs/plugin-abi.md) with no SDK: proof that any language that compiles to a core
;; WebAssembly module can implement the ABI.
;;
;; Keeps records that have a value and drops tombstones (null values). No params.
;; Build: `wat2wasm drop_tombstones.wat` or the `wat` crate (the host's tests do that).
(module
  ;; 2 pages at start; `sluice_alloc` grows it.
  (memory (export "memory") 2)

  ;; The exchange buffer always starts here, 8-aligned.
  (global $buffer i32 (i32.const 1024))

  (func (export "sluice_abi_version") (result i32) (i32.const 1))

  ;; 1 = filter.
  (func (export "sluice_kind") (result i32) (i32.const 1))

  ;; Returns the buffer at 1024, growing memory so that `size` bytes fit; 0 if it cannot.
  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $pages i32)
    ;; pages needed = ceil((1024 + size) / 65536)
    (local.set $pages
      (i32.shr_u
        (i32.add (i32.add (global.get $buffer) (local.get $size)) (i32.const 65535))
        (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $buffer))

  ;; No params to read.
  (func (export "sluice_init") (param $ptr i32) (param $len i32) (result i32) (i32.const 0))

  ;; For each record: out[i] = (value_len >= 0). Entries are packed back to back:
  ;; offset i64 @0, timestamp i64 @8, key_len i32 @16, value_len i32 @20,
  ;; headers_count u32 @24, headers_len u32 @28, then key, value, headers.
  (func (export "sluice_filter")
        (param $in i32) (param $len i32) (param $count i32) (param $out i32) (result i32)
    (local $i i32) (local $p i32) (local $key i32) (local $value i32)
    (local.set $p (local.get $in))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $key (i32.load offset=16 (local.get $p)))
        (local.set $value (i32.load offset=20 (local.get $p)))
        (i32.store8
          (i32.add (local.get $out) (local.get $i))
          (i32.ge_s (local.get $value) (i32.const 0)))
        ;; p += 32 + max(key_len, 0) + max(value_len, 0) + headers_len
        (local.set $p
          (i32.add
            (i32.add (local.get $p) (i32.add (i32.const 32) (i32.load offset=28 (local.get $p))))
            (i32.add
              (select (local.get $key) (i32.const 0) (i32.gt_s (local.get $key) (i32.const 0)))
              (select (local.get $value) (i32.const 0) (i32.gt_s (local.get $value) (i32.const 0))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))
)
