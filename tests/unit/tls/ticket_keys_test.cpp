#include "core/tls/ticket_keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>
#include <variant>

namespace canopy::tls {
namespace {

using ::testing::HasSubstr;

std::string base64(const std::vector<unsigned char>& bytes) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string text;
    for (size_t index = 0; index < bytes.size(); index += 3) {
        uint32_t group = static_cast<uint32_t>(bytes[index]) << 16;
        size_t left = bytes.size() - index;
        if (left > 1) {
            group |= static_cast<uint32_t>(bytes[index + 1]) << 8;
        }
        if (left > 2) {
            group |= bytes[index + 2];
        }
        text += kAlphabet[(group >> 18) & 63];
        text += kAlphabet[(group >> 12) & 63];
        text += left > 1 ? kAlphabet[(group >> 6) & 63] : '=';
        text += left > 2 ? kAlphabet[group & 63] : '=';
    }
    return text;
}

// Bytes 0, 1, 2, ... from `first`: every field's place is visible.
std::vector<unsigned char> counting(size_t size, unsigned char first = 0) {
    std::vector<unsigned char> bytes(size);
    std::iota(bytes.begin(), bytes.end(), first);
    return bytes;
}

std::vector<unsigned char> range(unsigned char from, unsigned char to) {
    return counting(static_cast<size_t>(to - from), from);
}

json::Value parsed(std::string_view text) {
    return std::get<json::Value>(json::parse(text));
}

TEST(TicketKeysTest, A48ByteKeyIsNameAesKeyHmacSecret) {
    auto key = decodeTicketKey(base64(counting(48)));
    ASSERT_TRUE(key) << key.error().message;
    EXPECT_EQ(std::vector<unsigned char>(key->name.begin(), key->name.end()), range(0, 16));
    EXPECT_EQ(key->aes_key, range(16, 32));
    EXPECT_EQ(key->hmac_secret, range(32, 48));
}

TEST(TicketKeysTest, An80ByteKeyIsNameHmacSecretAesKey) {
    auto key = decodeTicketKey(base64(counting(80)));
    ASSERT_TRUE(key) << key.error().message;
    EXPECT_EQ(std::vector<unsigned char>(key->name.begin(), key->name.end()), range(0, 16));
    EXPECT_EQ(key->hmac_secret, range(16, 48));
    EXPECT_EQ(key->aes_key, range(48, 80));
}

TEST(TicketKeysTest, OtherLengthsAndBadBase64AreRefused) {
    EXPECT_THAT(decodeTicketKey(base64(counting(47))).error().message, HasSubstr("not 47"));
    EXPECT_THAT(decodeTicketKey(base64(counting(64))).error().message, HasSubstr("48 or 80"));
    std::string good = base64(counting(48));
    EXPECT_FALSE(decodeTicketKey(good.substr(1)));               // not a multiple of 4
    EXPECT_FALSE(decodeTicketKey("*" + good.substr(1)));         // outside the alphabet
    EXPECT_FALSE(decodeTicketKey(good.substr(0, 60) + "=A=="));  // padding inside
    EXPECT_FALSE(decodeTicketKey(""));
}

TEST(TicketKeysTest, InAnArrayTheLastKeyIssuesAndComesFirst) {
    std::string first = base64(counting(48, 1));
    std::string second = base64(counting(80, 100));
    auto keys = parseTicketKeys(parsed("[\"" + first + "\", \"" + second + "\"]"));
    ASSERT_TRUE(keys) << keys.error().message;
    ASSERT_EQ(keys->size(), 2U);
    EXPECT_EQ((*keys)[0].name[0], 100);  // the array's last key issues tickets
    EXPECT_EQ((*keys)[0].aes_key.size(), 32U);
    EXPECT_EQ((*keys)[1].name[0], 1);
    EXPECT_EQ((*keys)[1].aes_key.size(), 16U);

    auto single = parseTicketKeys(parsed("\"" + first + "\""));
    ASSERT_TRUE(single);
    EXPECT_EQ(single->size(), 1U);

    EXPECT_FALSE(parseTicketKeys(parsed("[]")));
    EXPECT_FALSE(parseTicketKeys(parsed("[\"" + first + "\", 7]")));
    EXPECT_FALSE(parseTicketKeys(parsed("true")));
}

}  // namespace
}  // namespace canopy::tls
