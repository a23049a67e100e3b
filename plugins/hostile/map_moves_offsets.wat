;; A map that answers its first record under another offset (its offset + 1).
(module
  (memory (export "memory") 2)
  (global $buffer i32 (i32.const 1024))
  (func (export "sluice_abi_version") (result i32) (i32.const 2))
  ;; 3 = map.
  (func (export "sluice_kind") (result i32) (i32.const 3))
  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.shr_u
        (i32.add (i32.add (global.get $buffer) (local.get $size)) (i32.const 65535))
        (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $buffer))
  (func (export "sluice_init") (param $ptr i32) (param $len i32) (result i32) (i32.const 0))
  (func (export "sluice_map")
        (param $in i32) (param $len i32) (param $count i32) (param $out i32) (result i32)
    (i64.store (local.get $in) (i64.add (i64.load (local.get $in)) (i64.const 1)))
    ;; The output is the input itself: same records, unchanged.
    (i32.store (local.get $out) (local.get $in))
    (i32.store offset=4 (local.get $out) (local.get $len))
    (i32.const 0))
)
