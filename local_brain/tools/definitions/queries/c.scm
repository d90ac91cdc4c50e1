; C, and C++ before cpp.scm: function definitions and prototypes (also returning a
; pointer), tagged types with a body, typedefs, and function-like macros.
(function_definition) @def
(struct_specifier body: (_)) @def
(union_specifier body: (_)) @def
(enum_specifier body: (_)) @def
(type_definition) @def
(declaration declarator: (function_declarator)) @def
(declaration declarator: (pointer_declarator declarator: (function_declarator))) @def
(preproc_function_def) @def
