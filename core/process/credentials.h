#pragma once

#include <string>

#include "core/base/result.h"
#include "core/process/runtime_settings.h"

namespace canopy {

// Resolves a user name (and optional group name; empty means the user's
// primary group) against the system's databases.
Result<Credentials> resolveCredentials(const std::string& user, const std::string& group_name);

// Resolves a group name.
Result<gid_t> resolveGroup(const std::string& group_name);

// Switches the calling process to `credentials` (supplementary groups, gid,
// uid, in that order). A no-op when `credentials` is empty.
Result<void> dropPrivileges(const std::optional<Credentials>& credentials);

}  // namespace canopy
