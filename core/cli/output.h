#pragma once

// How `canopy` shows answers: JSON bodies with Unix line ends, tables for
// people, and error answers as "error, detail, where" on stderr.

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/cli/control_client.h"

namespace canopy::cli {

// The API's pretty JSON ends lines with CRLF; a terminal, a file saved with
// `>` and an editor want LF. Nothing else changes.
std::string withUnixLineEnds(std::string_view text);

// Columns padded to their widest cell, two spaces apart; no trailing blanks.
std::string formatTable(const std::vector<std::vector<std::string>>& rows);

// Prints an error answer: "canopy: <error>" and its detail, the JSON path
// of an invalid value and, for invalid JSON, its line and column — with the
// offending line of `sent` (the body that was sent) when given.
void reportApiError(std::ostream& err, const HttpAnswer& answer, std::string_view sent = {});

}  // namespace canopy::cli
