; Rust: functions and trait signatures, types, traits, impl blocks, inline modules, macros.
(function_item) @def
(function_signature_item) @def
(struct_item) @def
(enum_item) @def
(union_item) @def
(trait_item) @def
(impl_item) @def
(mod_item body: (_)) @def
(type_item) @def
(macro_definition) @def
