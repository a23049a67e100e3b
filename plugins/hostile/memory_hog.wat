;; Hostile: a filter that grows its memory to 1 GiB, and traps when refused.
(module
  (memory (export "memory") 2)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_kind") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.shr_u (i32.add (i32.add (i32.const 1024) (local.get $size)) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
        (then (return (i32.const 0))))))
    (i32.const 1024))
  (func (export "sluice_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_filter") (param i32 i32 i32 i32) (result i32)
    ;; 16384 more pages of 64 KiB = 1 GiB.
    (if (i32.eq (memory.grow (i32.const 16384)) (i32.const -1))
      (then unreachable))
    (i32.const 0))
)
