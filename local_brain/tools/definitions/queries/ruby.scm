; Ruby: classes, modules, methods and singleton methods (`def self.make`).
(class) @def
(module) @def
(method) @def
(singleton_method) @def
