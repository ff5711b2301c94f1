;; hello: a WASI command. It prints "Hello, NAME!" with its first input as NAME (else "world"); its output is
;; the task's result.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "Hello, ")
  (data (i32.const 16) "!\n")
  (data (i32.const 32) "world")
  ;; 64: one iovec for fd_write; 100: argc and argv's size; 200: argv pointers; 1024: argv strings.
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 64) (local.get $ptr))
    (i32.store (i32.const 68) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72))))
  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $more)))
    (local.get $n))
  (func (export "_start")
    (local $name i32)
    (local $len i32)
    (drop (call $args_sizes_get (i32.const 100) (i32.const 104)))
    ;; Long arguments would not fit below the page's end: they trap, and the task fails.
    (drop (call $args_get (i32.const 200) (i32.const 1024)))
    (local.set $name (i32.const 32))
    (local.set $len (i32.const 5))
    (if (i32.gt_u (i32.load (i32.const 100)) (i32.const 1))
      (then
        (local.set $name (i32.load (i32.const 204)))
        (local.set $len (call $strlen (local.get $name)))))
    (call $write (i32.const 0) (i32.const 7))
    (call $write (local.get $name) (local.get $len))
    (call $write (i32.const 16) (i32.const 2))))
