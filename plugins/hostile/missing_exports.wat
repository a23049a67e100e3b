;; Hostile: claims ABI v1 but lacks sluice_alloc, sluice_init and sluice_filter.
(module
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_kind") (result i32) (i32.const 1))
)
