; TypeScript and TSX, after ecmascript.scm: class fields holding a function, and the
; declarations JavaScript does not have (interfaces, enums, types, namespaces, signatures).
(public_field_definition value: [(arrow_function) (function_expression)]) @def
(abstract_class_declaration) @def
(interface_declaration) @def
(enum_declaration) @def
(type_alias_declaration) @def
(internal_module) @def
(module) @def
(method_signature) @def
(abstract_method_signature) @def
(function_signature) @def
