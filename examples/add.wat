;; add: a core module whose export `add` takes two integers. `--inputs 10,20` gives 30.
(module
  (func (export "add") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    i32.add))
