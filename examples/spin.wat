;; spin: loops forever without calling the host, for trying `tasks stop` (the proplet's interrupt check ends it).
(module
  (func (export "spin") (result i32)
    (local i32)
    (loop $l
      local.get 0
      i32.const 1
      i32.add
      local.set 0
      br $l)
    local.get 0))
