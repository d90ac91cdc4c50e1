; Shared by JavaScript, TypeScript and TSX: declarations, methods, and functions bound to
; a variable or to a member (`const f = () => ...`, `Foo.prototype.bar = function () {}`).
(class_declaration) @def
(function_declaration) @def
(generator_function_declaration) @def
(method_definition) @def
(variable_declarator
    value: [(arrow_function) (function_expression) (generator_function)]) @def
(assignment_expression
    left: (member_expression)
    right: [(arrow_function) (function_expression) (generator_function)]) @def
