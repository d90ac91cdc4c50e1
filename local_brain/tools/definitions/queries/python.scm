; Python: classes and functions (methods are functions inside a class).
(class_definition) @def
(function_definition) @def
