#include "runtime/network/nft.hpp"

#include <nftables/libnftables.h>

#include <algorithm>
#include <array>
#include <string_view>

namespace hyper::runtime::net {
namespace {

// The chains ensure_table makes; rules go only into these.
constexpr std::array<std::string_view, 4> kChains = {"prerouting", "output", "postrouting", "forward"};

constexpr const char* kTableCommands =
    "add table ip hyper\n"
    "add chain ip hyper prerouting { type nat hook prerouting priority dstnat; }\n"
    "add chain ip hyper output { type nat hook output priority -100; }\n"
    "add chain ip hyper postrouting { type nat hook postrouting priority srcnat; }\n"
    "add chain ip hyper forward { type filter hook forward priority 0; policy accept; }\n";

// How often delete_rules lists and deletes again when a concurrent edit removed one of
// the rules between its listing and its batch (the batch then fails as a whole).
constexpr int kDeleteAttempts = 3;
constexpr size_t kMaxTag = 128;  // nft refuses longer comments

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The first line of a batch, to name it in an error.
std::string first_line(const std::string& commands) {
  const std::string line = commands.substr(0, commands.find('\n'));
  return line.size() < commands.size() - 1 ? line + " ..." : line;
}

bool known_chain(std::string_view chain) { return std::find(kChains.begin(), kChains.end(), chain) != kChains.end(); }

// A statement is one rule's tail: a newline, ';' or '#' would end it and start something else.
Status check_rule(const NftRule& rule) {
  if (!known_chain(rule.chain)) {
    return make_error(Errc::invalid_argument, "nft: no chain \"" + rule.chain + "\" in table ip hyper");
  }
  if (rule.statement.empty() || rule.statement.find_first_of("\n;#") != std::string::npos) {
    return make_error(Errc::invalid_argument, "nft: invalid rule statement \"" + rule.statement + "\"");
  }
  return {};
}

// A string member of a JSON object, or "" (absent, another type): never throws.
std::string text_field(const Json& object, const char* key) {
  if (!object.is_object()) return {};
  const auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

bool has_table(const Json& tables) {
  for (const Json& entry : tables.value("nftables", Json::array())) {
    const Json* table = entry.is_object() && entry.contains("table") ? &entry["table"] : nullptr;
    if (table && text_field(*table, "family") == "ip" && text_field(*table, "name") == kTable) return true;
  }
  return false;
}

// The table's rules, or an empty listing when there is no table.
Result<Json> list_rules(Nft& nft) {
  const Json tables = HYPER_TRY(nft.list_json("list tables ip"));
  if (!has_table(tables)) return Json::array();
  const Json listing = HYPER_TRY(nft.list_json(std::string("list table ip ") + kTable));
  Json rules = Json::array();
  for (const Json& entry : listing.value("nftables", Json::array())) {
    if (entry.is_object() && entry.contains("rule") && entry["rule"].is_object()) rules.push_back(entry["rule"]);
  }
  return rules;
}

// "delete rule ..." for each rule tagged `tag`; empty when there is none.
std::string delete_commands(const Json& rules, const std::string& tag) {
  std::string commands;
  for (const Json& rule : rules) {
    const std::string chain = text_field(rule, "chain");
    const Json handle = rule.contains("handle") ? rule["handle"] : Json();
    if (text_field(rule, "comment") != tag || !known_chain(chain) || !handle.is_number_unsigned()) continue;
    commands += "delete rule ip hyper " + chain + " handle " + std::to_string(handle.get<uint64_t>()) + "\n";
  }
  return commands;
}

}  // namespace

void Nft::Free::operator()(nft_ctx* context) const noexcept { nft_ctx_free(context); }

Result<Nft> Nft::open() {
  std::unique_ptr<nft_ctx, Free> context(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!context) return make_error(Errc::io, "nft: creating a libnftables context failed");
  if (nft_ctx_buffer_output(context.get()) != 0 || nft_ctx_buffer_error(context.get()) != 0) {
    return make_error(Errc::io, "nft: buffering libnftables output failed");
  }
  return Nft(std::move(context));
}

Status Nft::execute(const std::string& commands) {
  const int rc = nft_run_cmd_from_buffer(context_.get(), commands.c_str());
  // Reading a buffer also empties it for the next command.
  const std::string errors = trimmed(nft_ctx_get_error_buffer(context_.get()));
  if (rc == 0) return {};
  return make_error(Errc::io, "nft: " + first_line(commands) + ": " + (errors.empty() ? "failed" : errors));
}

Status Nft::run(const std::string& commands) {
  HYPER_CHECK(execute(commands));
  (void)nft_ctx_get_output_buffer(context_.get());
  return {};
}

Result<Json> Nft::list_json(const std::string& what) {
  // JSON output only here: with it set, libnftables would also try to read run()'s
  // commands as JSON first.
  const unsigned flags = nft_ctx_output_get_flags(context_.get());
  nft_ctx_output_set_flags(context_.get(), flags | NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
  const Status listed = execute(what);
  nft_ctx_output_set_flags(context_.get(), flags);
  const std::string output = nft_ctx_get_output_buffer(context_.get());
  HYPER_CHECK(listed);
  Json document = Json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) {
    return make_error(Errc::io, "nft: " + what + ": the JSON listing does not parse");
  }
  return document;
}

Status ensure_table(Nft& nft) { return nft.run(kTableCommands); }

Status check_tag(const std::string& tag) {
  bool valid = !tag.empty() && tag.size() <= kMaxTag;
  for (const char c : tag) valid = valid && c >= 0x20 && c < 0x7f && c != '"' && c != '\'' && c != '\\';
  if (!valid) {
    return make_error(Errc::invalid_argument,
                      "nft: invalid rule tag (1-128 printable characters without quotes or backslashes)");
  }
  return {};
}

Status add_rules(Nft& nft, const std::string& tag, const std::vector<NftRule>& rules) {
  HYPER_CHECK(check_tag(tag));
  std::string commands = kTableCommands;
  for (const NftRule& rule : rules) {
    HYPER_CHECK(check_rule(rule));
    commands += "add rule ip hyper " + rule.chain + ' ' + rule.statement + " comment \"" + tag + "\"\n";
  }
  return nft.run(commands);
}

Status delete_rules(Nft& nft, const std::string& tag) {
  HYPER_CHECK(check_tag(tag));
  Status deleted;
  for (int attempt = 0; attempt < kDeleteAttempts; ++attempt) {
    const std::string commands = delete_commands(HYPER_TRY(list_rules(nft)), tag);
    if (commands.empty()) return {};
    deleted = nft.run(commands);
    if (deleted) return {};
  }
  return deleted;
}

Result<std::vector<std::string>> rule_tags(Nft& nft, const std::string& prefix) {
  std::vector<std::string> tags;
  for (const Json& rule : HYPER_TRY(list_rules(nft))) {
    const std::string comment = text_field(rule, "comment");
    if (!comment.empty() && comment.rfind(prefix, 0) == 0) tags.push_back(comment);
  }
  return tags;
}

}  // namespace hyper::runtime::net
