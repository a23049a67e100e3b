;; Hostile: asks for 1 GiB of memory at start (refused at upload: over the memory limit).
(module
  (memory (export "memory") 16384)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_kind") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_filter") (param i32 i32 i32 i32) (result i32) (i32.const 0))
)
