#include "runtime/image_changes.hpp"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string_view>
#include <utility>

#include "runtime/dockerfile_words.hpp"

namespace hyper::runtime::changes {
namespace {

using formats::Json;
using KeyValues = std::vector<std::pair<std::string, std::string>>;

Error invalid(const std::string& message) { return make_error(Errc::invalid_argument, message); }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The value of `name` in the config's Env, if it is set.
std::optional<std::string> env_value(const Json& config, std::string_view name) {
  const auto env = config.find("Env");
  if (env == config.end() || !env->is_array()) return std::nullopt;
  for (const auto& entry : *env) {
    if (!entry.is_string()) continue;
    const auto& text = entry.get_ref<const std::string&>();
    if (text.size() > name.size() && text.compare(0, name.size(), name) == 0 && text[name.size()] == '=')
      return text.substr(name.size() + 1);
  }
  return std::nullopt;
}

// Variables for Dockerfile words: the config's Env as it is when an instruction starts.
dockerfile::Lookup env_lookup(const Json& config) {
  return [&config](std::string_view name) { return env_value(config, name); };
}

Result<KeyValues> key_values(dockerfile::WordReader& reader, std::string_view args) {
  const auto words = HYPER_TRY(reader.words(args));
  if (words.empty()) return invalid("requires at least one argument");
  KeyValues out;
  if (words.front().find('=') == std::string::npos) {
    // The legacy form: the first word is the name, the rest of the line the value.
    size_t split = 0;
    while (split < args.size() && !is_space(args[split])) ++split;
    const auto rest = trim(args.substr(split));
    if (rest.empty()) return invalid("must have two arguments (NAME VALUE) or be of the form NAME=VALUE");
    auto key = HYPER_TRY(reader.word(args.substr(0, split)));
    auto value = HYPER_TRY(reader.word(rest));
    out.emplace_back(std::move(key), std::move(value));
    return out;
  }
  for (const auto& word : words) {
    const size_t eq = word.find('=');
    if (eq == std::string::npos)
      return invalid("syntax error - can't find = in \"" + word + "\". Must be of the form: name=value");
    if (eq == 0) return invalid("names can not be blank");
    out.emplace_back(word.substr(0, eq), word.substr(eq + 1));
  }
  return out;
}

// The member `key` of `config`, made an empty `kind` when missing or null.
Result<Json*> member_of_type(Json& config, const char* key, Json::value_t kind) {
  Json& value = config[key];
  if (value.is_null()) value = kind == Json::value_t::array ? Json::array() : Json::object();
  if (value.type() != kind) return make_error(Errc::bad_image, std::string("the image's \"") + key + "\" is malformed");
  return &value;
}

// A command in exec form (a JSON list of strings) or shell form (given to the shell).
Json command_line(const Json& config, std::string_view args) {
  if (!args.empty() && args.front() == '[') {
    const Json parsed = Json::parse(args.begin(), args.end(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_array() && std::all_of(parsed.begin(), parsed.end(), [](const Json& item) { return item.is_string(); }))
      return parsed;
  }
  Json shell = Json::array({"/bin/sh", "-c"});
  const auto configured = config.find("Shell");
  if (configured != config.end() && configured->is_array() && !configured->empty() &&
      std::all_of(configured->begin(), configured->end(), [](const Json& item) { return item.is_string(); }))
    shell = *configured;
  shell.push_back(std::string(args));
  return shell;
}

Result<uint32_t> port_number(std::string_view text, const std::string& spec) {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return invalid("invalid port \"" + spec + "\"");
  const uint32_t port = static_cast<uint32_t>(std::stoul(std::string(text)));
  if (port > 65535) return invalid("invalid port \"" + spec + "\": out of range");
  return port;
}

// "80", "80/tcp", "53/udp", "8000-8002" -> {"80/tcp", ...}.
Result<std::vector<std::string>> exposed_ports(const std::string& spec) {
  std::string_view ports = spec;
  std::string protocol = "tcp";
  if (const size_t slash = spec.find('/'); slash != std::string::npos) {
    protocol = spec.substr(slash + 1);
    for (auto& c : protocol) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ports = ports.substr(0, slash);
  }
  if (protocol != "tcp" && protocol != "udp" && protocol != "sctp")
    return invalid("invalid protocol \"" + protocol + "\" in \"" + spec + "\" (tcp, udp or sctp)");
  const size_t dash = ports.find('-');
  const uint32_t first = HYPER_TRY(port_number(ports.substr(0, dash), spec));
  const uint32_t last = dash == std::string_view::npos ? first : HYPER_TRY(port_number(ports.substr(dash + 1), spec));
  if (last < first) return invalid("invalid port range \"" + spec + "\"");
  std::vector<std::string> out;
  for (uint32_t port = first; port <= last; ++port) out.push_back(std::to_string(port) + "/" + protocol);
  return out;
}

// As Docker's: a number, or a name with or without "SIG", in any case.
Status check_signal(const std::string& text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (text.size() <= 3 && std::stoi(text) > 0 && std::stoi(text) < NSIG) return {};
    return invalid("invalid signal: " + text);
  }
  std::string name = upper(text);
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  for (int sig = 1; sig < NSIG; ++sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    if (abbrev != nullptr && name == abbrev) return {};
  }
  return invalid("invalid signal: " + text);
}

// "/a/./b/../c/" -> "/a/c".
std::string clean_path(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const auto part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  std::string out;
  for (const auto part : parts) out.append("/").append(part);
  return out.empty() ? "/" : out;
}

struct State {
  Json& config;
  bool cmd_set = false;  // a CMD came earlier: a later ENTRYPOINT keeps it
};

Result<std::string> single_word(dockerfile::WordReader& reader, std::string_view args) {
  const auto words = HYPER_TRY(reader.words(args));
  if (words.size() != 1) return invalid("requires exactly one argument");
  return words.front();
}

Status change_cmd(State& state, std::string_view args) {
  state.config["Cmd"] = command_line(state.config, args);
  state.cmd_set = true;
  return {};
}

Status change_entrypoint(State& state, std::string_view args) {
  state.config["Entrypoint"] = command_line(state.config, args);
  if (!state.cmd_set) state.config["Cmd"] = nullptr;
  return {};
}

Status change_env(State& state, std::string_view args) {
  dockerfile::WordReader reader(env_lookup(state.config));
  const auto pairs = HYPER_TRY(key_values(reader, args));
  Json& env = *HYPER_TRY(member_of_type(state.config, "Env", Json::value_t::array));
  for (const auto& [key, value] : pairs) {
    const std::string prefix = key + "=";
    const auto same = std::find_if(env.begin(), env.end(), [&](const Json& entry) {
      return entry.is_string() && entry.get_ref<const std::string&>().rfind(prefix, 0) == 0;
    });
    if (same != env.end()) {
      *same = prefix + value;
    } else {
      env.push_back(prefix + value);
    }
  }
  return {};
}

Status change_label(State& state, std::string_view args) {
  dockerfile::WordReader reader(env_lookup(state.config));
  const auto pairs = HYPER_TRY(key_values(reader, args));
  Json& labels = *HYPER_TRY(member_of_type(state.config, "Labels", Json::value_t::object));
  for (const auto& [key, value] : pairs) labels[key] = value;
  return {};
}

Status change_user(State& state, std::string_view args) {
  dockerfile::WordReader reader(env_lookup(state.config));
  state.config["User"] = HYPER_TRY(single_word(reader, args));
  return {};
}

Status change_workdir(State& state, std::string_view args) {
  dockerfile::WordReader reader(env_lookup(state.config));
  const auto dir = HYPER_TRY(reader.word(args));
  if (dir.empty()) return invalid("requires a directory");
  std::string base = "/";
  if (const auto current = state.config.find("WorkingDir"); current != state.config.end() && current->is_string())
    base = current->get<std::string>();
  state.config["WorkingDir"] = clean_path(dir.front() == '/' ? dir : base + "/" + dir);
  return {};
}

Status change_expose(State& state, std::string_view args) {
  dockerfile::WordReader reader(env_lookup(state.config));
  const auto specs = HYPER_TRY(reader.words(args));
  Json& ports = *HYPER_TRY(member_of_type(state.config, "ExposedPorts", Json::value_t::object));
  for (const auto& spec : specs)
    for (const auto& port : HYPER_TRY(exposed_ports(spec))) ports[port] = Json::object();
  return {};
}

Status change_volume(State& state, std::string_view args) {
  std::vector<std::string> paths;
  const Json parsed = args.front() == '['
                          ? Json::parse(args.begin(), args.end(), nullptr, /*allow_exceptions=*/false)
                          : Json(nullptr);
  if (parsed.is_array() && std::all_of(parsed.begin(), parsed.end(), [](const Json& item) { return item.is_string(); })) {
    for (const auto& item : parsed) paths.push_back(item.get<std::string>());
  } else {
    dockerfile::WordReader reader(env_lookup(state.config));
    paths = HYPER_TRY(reader.words(args));
  }
  Json& volumes = *HYPER_TRY(member_of_type(state.config, "Volumes", Json::value_t::object));
  for (const auto& path : paths) {
    const auto trimmed = trim(path);
    if (trimmed.empty()) return invalid("VOLUME specified can not be an empty string");
    volumes[std::string(trimmed)] = Json::object();
  }
  return {};
}

Status change_stop_signal(State& state, std::string_view args) {
  dockerfile::WordReader reader(env_lookup(state.config));
  const auto signal = HYPER_TRY(single_word(reader, args));
  HYPER_CHECK(check_signal(signal));
  state.config["StopSignal"] = signal;
  return {};
}

using Handler = Status (*)(State&, std::string_view);

struct Instruction {
  std::string_view name;
  Handler handler;  // nullptr: a Dockerfile instruction --change does not take
};

constexpr Instruction kInstructions[] = {
    {"CMD", change_cmd},       {"ENTRYPOINT", change_entrypoint}, {"ENV", change_env},
    {"LABEL", change_label},   {"USER", change_user},             {"WORKDIR", change_workdir},
    {"EXPOSE", change_expose}, {"VOLUME", change_volume},         {"STOPSIGNAL", change_stop_signal},
    {"ADD", nullptr},          {"ARG", nullptr},                  {"COPY", nullptr},
    {"FROM", nullptr},         {"HEALTHCHECK", nullptr},          {"MAINTAINER", nullptr},
    {"ONBUILD", nullptr},      {"RUN", nullptr},                  {"SHELL", nullptr},
};

Status apply_one(State& state, const std::string& change) {
  // A backslash at the end of a line continues it, as in a Dockerfile.
  std::string joined;
  for (size_t i = 0; i < change.size(); ++i) {
    if (change[i] == '\\' && i + 1 < change.size() && change[i + 1] == '\n') {
      ++i;
      continue;
    }
    joined += change[i];
  }
  const auto line = trim(joined);
  if (line.empty()) return invalid("empty --change");
  size_t split = 0;
  while (split < line.size() && !is_space(line[split])) ++split;
  const std::string name = upper(line.substr(0, split));
  const auto args = trim(line.substr(split));
  const auto known = std::find_if(std::begin(kInstructions), std::end(kInstructions),
                                  [&](const Instruction& instruction) { return instruction.name == name; });
  if (known == std::end(kInstructions))
    return invalid("unknown instruction: " + name +
                   " (--change takes CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)");
  if (known->handler == nullptr) return invalid("dockerfile instruction not supported with --change: " + name);
  if (args.empty()) return invalid(name + " requires at least one argument");
  const Status applied = known->handler(state, args);
  if (!applied.ok()) return make_error(applied.error().code, name + ": " + applied.error().message);
  return {};
}

}  // namespace

Status apply(Json& config, const std::vector<std::string>& changes) {
  try {
    if (config.is_null()) config = Json::object();
    if (!config.is_object()) return make_error(Errc::bad_image, "the image's \"config\" is not an object");
    State state{config};
    for (const auto& change : changes) HYPER_CHECK(apply_one(state, change));
    return {};
  } catch (const std::exception& e) {  // nlohmann reports misuse and allocation failure by throwing
    return make_error(Errc::invalid_argument, std::string("applying --change: ") + e.what());
  }
}

Status validate(const std::vector<std::string>& changes) {
  Json scratch = Json::object();
  return apply(scratch, changes);
}

}  // namespace hyper::runtime::changes
