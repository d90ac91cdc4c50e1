; C++, after c.scm: classes, namespaces, member function declarations, and functions
; returning a reference.
(class_specifier body: (_)) @def
(namespace_definition) @def
(field_declaration declarator: (function_declarator)) @def
(field_declaration declarator: (pointer_declarator declarator: (function_declarator))) @def
(field_declaration declarator: (reference_declarator (function_declarator))) @def
(declaration declarator: (reference_declarator (function_declarator))) @def
