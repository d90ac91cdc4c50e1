; Java: types and their methods and constructors.
(class_declaration) @def
(interface_declaration) @def
(enum_declaration) @def
(record_declaration) @def
(annotation_type_declaration) @def
(method_declaration) @def
(constructor_declaration) @def
(compact_constructor_declaration) @def
