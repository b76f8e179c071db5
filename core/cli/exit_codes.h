#pragma once

// The exit codes of `canopy`, documented in docs/cli.md: scripts tell "the
// API said no" from "nobody answered" from "I called it wrong".

namespace canopy::cli {

inline constexpr int kExitSuccess = 0;
// The control API answered an error (4xx/5xx), or `config edit` was
// abandoned after one.
inline constexpr int kExitApiError = 1;
// Bad arguments, an unreadable FILE, an invalid --control address.
inline constexpr int kExitUsage = 2;
// No canopyd answered: no socket, connection refused, permission denied,
// timeout, or an answer that is not HTTP.
inline constexpr int kExitUnreachable = 3;

}  // namespace canopy::cli
