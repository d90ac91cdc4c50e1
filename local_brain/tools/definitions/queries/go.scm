; Go: functions, methods (named by their receiver), types and interface methods.
(function_declaration) @def
(method_declaration) @def
(type_spec) @def
(type_alias) @def
(method_elem) @def
