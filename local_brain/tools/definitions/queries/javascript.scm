; JavaScript, after ecmascript.scm: class fields holding a function (`handler = (x) => x`).
(field_definition value: [(arrow_function) (function_expression)]) @def
