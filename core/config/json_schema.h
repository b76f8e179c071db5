#pragma once

// A documented subset of JSON Schema (draft 4 to 7), enough for a module to
// describe its own application keys. Debian ships no C++ validator, and a
// module must not rely on keywords the core would silently ignore, so a
// schema using anything outside the subset is refused (checkSchema) instead
// of half-applied.
//
// Supported keywords (see core/config/README.md):
//   type (string or array; "integer" accepts 2.0), enum, properties,
//   required, additionalProperties (boolean or schema), items (one schema for
//   every element), minimum, maximum, exclusiveMinimum, exclusiveMaximum
//   (draft 4 booleans or draft 6+ numbers), minLength, maxLength (in Unicode
//   code points), pattern (PCRE2, unanchored), minItems, maxItems,
//   minProperties, maxProperties, propertyNames, allOf, anyOf, oneOf, not;
//   the annotations $schema,
//   $id, id, $comment, title, description, default, examples are accepted and
//   ignored. A boolean schema (true/false, draft 6) is accepted too.

#include <nlohmann/json.hpp>

#include "core/base/result.h"
#include "core/config/validation_error.h"
#include "core/json/value.h"

namespace canopy::config {

// Succeeds when `schema` uses only the subset and every keyword has the shape
// the specification gives it; otherwise the error names the keyword and
// where it sits in the schema as a JSON Pointer ("unsupported keyword
// \"pattern\" at /properties/module").
Result<void> checkSchema(const nlohmann::json& schema);

// Validates `instance`, found at `where` in the configuration, against
// `schema`. Returns the first violation, with the path of the offending value
// and a Unit-style message naming its key. A schema that checkSchema() would
// refuse yields an error rather than being partly applied. Pure function;
// safe to call from any thread.
ValidationResult validateAgainstSchema(const json::Value& instance, const nlohmann::json& schema,
                                       const Location& where = Location());

}  // namespace canopy::config
