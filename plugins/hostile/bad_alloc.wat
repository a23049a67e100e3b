;; Hostile: sluice_alloc answers a pointer far outside its memory.
(module
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_kind") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 0x7ffffff0))
  (func (export "sluice_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_filter") (param i32 i32 i32 i32) (result i32) (i32.const 0))
)
