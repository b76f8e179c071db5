#include "core/process/credentials.h"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <vector>

namespace canopy {

Result<Credentials> resolveCredentials(const std::string& user, const std::string& group_name) {
    Credentials credentials;
    std::vector<char> buffer(16384);
    passwd user_entry{};
    passwd* user_found = nullptr;
    int status = ::getpwnam_r(user.c_str(), &user_entry, buffer.data(), buffer.size(), &user_found);
    if (status != 0 || user_found == nullptr) {
        return Error{fmt::format("user \"{}\" not found", user)};
    }
    credentials.user = user;
    credentials.uid = user_entry.pw_uid;
    credentials.gid = user_entry.pw_gid;

    group group_entry{};
    group* group_found = nullptr;
    if (group_name.empty()) {
        status =
            ::getgrgid_r(credentials.gid, &group_entry, buffer.data(), buffer.size(), &group_found);
        credentials.group = (status == 0 && group_found != nullptr)
                                ? std::string(group_entry.gr_name)
                                : std::to_string(credentials.gid);
        return credentials;
    }
    status =
        ::getgrnam_r(group_name.c_str(), &group_entry, buffer.data(), buffer.size(), &group_found);
    if (status != 0 || group_found == nullptr) {
        return Error{fmt::format("group \"{}\" not found", group_name)};
    }
    credentials.group = group_name;
    credentials.gid = group_entry.gr_gid;
    return credentials;
}

Result<gid_t> resolveGroup(const std::string& group_name) {
    std::vector<char> buffer(16384);
    group group_entry{};
    group* group_found = nullptr;
    int status =
        ::getgrnam_r(group_name.c_str(), &group_entry, buffer.data(), buffer.size(), &group_found);
    if (status != 0 || group_found == nullptr) {
        return Error{fmt::format("group \"{}\" not found", group_name)};
    }
    return group_entry.gr_gid;
}

Result<void> dropPrivileges(const std::optional<Credentials>& credentials) {
    if (!credentials) {
        return {};
    }
    if (::initgroups(credentials->user.c_str(), credentials->gid) != 0) {
        return systemError(
            fmt::format("initgroups(\"{}\", {})", credentials->user, credentials->gid));
    }
    if (::setgid(credentials->gid) != 0) {
        return systemError(fmt::format("setgid({})", credentials->gid));
    }
    if (::setuid(credentials->uid) != 0) {
        return systemError(fmt::format("setuid({})", credentials->uid));
    }
    return {};
}

}  // namespace canopy
