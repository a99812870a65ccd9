// Hyper's own nftables table (family ip), edited through libnftables: the NAT for container
// networks, published ports and floating addresses. Each hyper rule carries a comment tag
// ("hyper:ctr:<id>", "hyper:net:<id>", "hyper:fip:<addr>") saying whom it belongs to, so
// the rules of one owner go away together however many processes edit the table at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vmm/result.hpp"

struct nft_ctx;

namespace hyper::runtime::net {

using Json = nlohmann::json;

// One libnftables context, its output and errors buffered; errors carry nft's message.
class Nft {
 public:
  [[nodiscard]] static Result<Nft> open();

  // nft syntax, one command a line; the whole text is one batch, applied atomically.
  [[nodiscard]] Status run(const std::string& commands);
  // A listing command ("list table ip hyper") as the JSON document libnftables-json describes.
  [[nodiscard]] Result<Json> list_json(const std::string& what);

 private:
  struct Free {
    void operator()(nft_ctx* context) const noexcept;
  };
  explicit Nft(std::unique_ptr<nft_ctx, Free> context) : context_(std::move(context)) {}
  // Runs `commands`; on failure, the error names them and quotes nft's explanation.
  [[nodiscard]] Status execute(const std::string& commands);

  std::unique_ptr<nft_ctx, Free> context_;
};

inline constexpr const char* kTable = "hyper";  // family ip

// The table with its base chains, created as needed (existing rules are kept):
//   prerouting  type nat hook prerouting priority dstnat
//   output      type nat hook output priority -100
//   postrouting type nat hook postrouting priority srcnat
//   forward     type filter hook forward priority 0, policy accept
[[nodiscard]] Status ensure_table(Nft& nft);

struct NftRule {
  std::string chain;      // one of the base chains above
  std::string statement;  // what follows "add rule ip hyper CHAIN"
};

// Printable ASCII without quotes or backslashes, 1..128 bytes: what fits an nft comment.
[[nodiscard]] Status check_tag(const std::string& tag);

// Adds the rules, each with `comment "<tag>"`, in one atomic batch that also creates the
// table and chains when missing (so a concurrent ensure_table elsewhere cannot fail it).
[[nodiscard]] Status add_rules(Nft& nft, const std::string& tag, const std::vector<NftRule>& rules);
// Deletes every rule of the table whose comment is `tag`, by handle, in one batch. No table
// or no such rule is fine.
[[nodiscard]] Status delete_rules(Nft& nft, const std::string& tag);
// The comments of the table's rules that start with `prefix`, one entry per rule.
[[nodiscard]] Result<std::vector<std::string>> rule_tags(Nft& nft, const std::string& prefix);

}  // namespace hyper::runtime::net
