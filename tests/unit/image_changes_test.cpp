#include "runtime/image_changes.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace hyper;
using hyper::runtime::formats::Json;
namespace changes = hyper::runtime::changes;

namespace {

// The config after `list` was applied to `start`; fails the test on an error.
Json applied(const std::vector<std::string>& list, Json start = Json::object()) {
  const Status status = changes::apply(start, list);
  INFO((status.ok() ? std::string() : status.error().message));
  REQUIRE(status.ok());
  return start;
}

std::string error_of(const std::vector<std::string>& list, Json start = Json::object()) {
  const Status status = changes::apply(start, list);
  REQUIRE_FALSE(status.ok());
  CHECK(status.error().code == Errc::invalid_argument);
  return status.error().message;
}

}  // namespace

TEST_CASE("image changes: CMD and ENTRYPOINT in JSON and shell form") {
  CHECK(applied({R"(CMD ["cat", "/new"])"})["Cmd"] == Json::array({"cat", "/new"}));
  CHECK(applied({"CMD echo $HOME  \"quoted\""})["Cmd"] == Json::array({"/bin/sh", "-c", "echo $HOME  \"quoted\""}));
  // Not a list of strings: the shell gets it, as Docker does.
  CHECK(applied({R"(CMD ["a", 1])"})["Cmd"] == Json::array({"/bin/sh", "-c", R"(["a", 1])"}));
  CHECK(applied({"CMD []"})["Cmd"] == Json::array());
  CHECK(applied({"cmd [\"lower\"]"})["Cmd"] == Json::array({"lower"}));
  CHECK(applied({"  CMD\ttrue  "})["Cmd"] == Json::array({"/bin/sh", "-c", "true"}));
  // A configured SHELL runs shell forms.
  CHECK(applied({"CMD ls"}, Json{{"Shell", {"/bin/bash", "-lc"}}})["Cmd"] == Json::array({"/bin/bash", "-lc", "ls"}));

  // ENTRYPOINT drops the command it would otherwise be given, unless a CMD came first.
  const Json base = {{"Cmd", {"sh"}}};
  auto config = applied({"ENTRYPOINT [\"/bin/app\"]"}, base);
  CHECK(config["Entrypoint"] == Json::array({"/bin/app"}));
  CHECK(config["Cmd"].is_null());
  config = applied({"CMD [\"--flag\"]", "ENTRYPOINT /bin/app run"}, base);
  CHECK(config["Entrypoint"] == Json::array({"/bin/sh", "-c", "/bin/app run"}));
  CHECK(config["Cmd"] == Json::array({"--flag"}));
  config = applied({"ENTRYPOINT [\"/bin/app\"]", "CMD [\"x\"]"}, base);
  CHECK(config["Cmd"] == Json::array({"x"}));
}

TEST_CASE("image changes: ENV forms, quoting and expansion") {
  const Json base = {{"Env", {"PATH=/usr/bin:/bin", "HOME=/root"}}};
  auto config = applied({R"(ENV A=1 B="two words" C='single $HOME' D=\$HOME E=$HOME/x)"}, base);
  CHECK(config["Env"] == Json::array({"PATH=/usr/bin:/bin", "HOME=/root", "A=1", "B=two words", "C=single $HOME",
                                      "D=$HOME", "E=/root/x"}));
  // Existing variables are replaced in place; $PATH is the old value.
  config = applied({"ENV PATH=/opt/bin:$PATH"}, base);
  CHECK(config["Env"] == Json::array({"PATH=/opt/bin:/usr/bin:/bin", "HOME=/root"}));
  // The legacy form: the rest of the line is the value.
  CHECK(applied({"ENV GREETING hello  big world"}, Json::object())["Env"] == Json::array({"GREETING=hello  big world"}));
  // Braced forms with defaults and alternatives; an unset variable is empty.
  config = applied({"ENV A=${HOME}:${NOPE:-dflt}:${HOME:+alt}:${NOPE:+alt}:[$NOPE]:${HOME-x}"}, base);
  CHECK(config["Env"][2] == "A=/root:dflt:alt::[]:/root");
  // Within one ENV instruction, variables are those from before it.
  config = applied({"ENV X=1", "ENV X=2 Y=$X"}, Json::object());
  CHECK(config["Env"] == Json::array({"X=2", "Y=1"}));
  // A lone '$' stays.
  CHECK(applied({"ENV P=cost$ Q=a$-b"})["Env"] == Json::array({"P=cost$", "Q=a$-b"}));
  // "Env": null, as Docker writes it, becomes a list.
  CHECK(applied({"ENV A=1"}, Json{{"Env", nullptr}})["Env"] == Json::array({"A=1"}));

  CHECK(error_of({"ENV"}) == "ENV requires at least one argument");
  CHECK(error_of({"ENV A=1 B"}).find("can't find = in \"B\"") != std::string::npos);
  CHECK(error_of({"ENV =x"}) == "ENV: names can not be blank");
  CHECK(error_of({"ENV ONLY"}).find("must have two arguments") != std::string::npos);
  CHECK(error_of({"ENV A=\"open"}) == "ENV: unmatched double quote");
  CHECK(error_of({"ENV A='open"}) == "ENV: unmatched single quote");
  CHECK(error_of({"ENV A=${B"}).find("missing '}'") != std::string::npos);
  CHECK(error_of({"ENV A=${B:?x}"}).find("unsupported substitution") != std::string::npos);
}

TEST_CASE("image changes: LABEL, USER, WORKDIR, STOPSIGNAL") {
  auto config = applied({R"(LABEL a=1 "b c"="d e")", "LABEL legacy the value"}, Json{{"Labels", {{"a", "0"}, {"k", "v"}}}});
  CHECK(config["Labels"] == Json{{"a", "1"}, {"b c", "d e"}, {"k", "v"}, {"legacy", "the value"}});

  CHECK(applied({"USER 1000:1000"})["User"] == "1000:1000");
  CHECK(applied({"USER $U"}, Json{{"Env", {"U=app"}}})["User"] == "app");
  CHECK(error_of({"USER a b"}) == "USER: requires exactly one argument");

  CHECK(applied({"WORKDIR /srv/./app/"})["WorkingDir"] == "/srv/app");
  CHECK(applied({"WORKDIR sub/dir"}, Json{{"WorkingDir", "/srv"}})["WorkingDir"] == "/srv/sub/dir");
  CHECK(applied({"WORKDIR rel", "WORKDIR ../other"})["WorkingDir"] == "/other");
  CHECK(applied({"WORKDIR /a/../../b"})["WorkingDir"] == "/b");
  CHECK(applied({"WORKDIR /with space"})["WorkingDir"] == "/with space");

  CHECK(applied({"STOPSIGNAL SIGQUIT"})["StopSignal"] == "SIGQUIT");
  CHECK(applied({"STOPSIGNAL term"})["StopSignal"] == "term");
  CHECK(applied({"STOPSIGNAL 9"})["StopSignal"] == "9");
  CHECK(error_of({"STOPSIGNAL SIGNOPE"}) == "STOPSIGNAL: invalid signal: SIGNOPE");
  CHECK(error_of({"STOPSIGNAL 0"}) == "STOPSIGNAL: invalid signal: 0");
  CHECK(error_of({"STOPSIGNAL 1000"}) == "STOPSIGNAL: invalid signal: 1000");
}

TEST_CASE("image changes: EXPOSE and VOLUME") {
  auto config = applied({"EXPOSE 80 443/TCP 53/udp 8000-8002/sctp"}, Json{{"ExposedPorts", {{"22/tcp", Json::object()}}}});
  CHECK(config["ExposedPorts"] == Json{{"22/tcp", Json::object()},
                                       {"80/tcp", Json::object()},
                                       {"443/tcp", Json::object()},
                                       {"53/udp", Json::object()},
                                       {"8000/sctp", Json::object()},
                                       {"8001/sctp", Json::object()},
                                       {"8002/sctp", Json::object()}});
  CHECK(applied({"EXPOSE $P"}, Json{{"Env", {"P=9000"}}})["ExposedPorts"] == Json{{"9000/tcp", Json::object()}});
  CHECK(error_of({"EXPOSE http"}) == "EXPOSE: invalid port \"http\"");
  CHECK(error_of({"EXPOSE 70000"}).find("out of range") != std::string::npos);
  CHECK(error_of({"EXPOSE 80/icmp"}).find("invalid protocol \"icmp\"") != std::string::npos);
  CHECK(error_of({"EXPOSE 90-80"}).find("invalid port range") != std::string::npos);
  CHECK(error_of({"EXPOSE 8080:80"}).find("invalid port") != std::string::npos);

  CHECK(applied({"VOLUME /data /logs"})["Volumes"] == Json{{"/data", Json::object()}, {"/logs", Json::object()}});
  CHECK(applied({R"(VOLUME ["/a b", "/c"])"})["Volumes"] == Json{{"/a b", Json::object()}, {"/c", Json::object()}});
  CHECK(error_of({R"(VOLUME [""])"}) == "VOLUME: VOLUME specified can not be an empty string");
}

TEST_CASE("image changes: what --change refuses") {
  CHECK(error_of({"RUN apt-get update"}) == "dockerfile instruction not supported with --change: RUN");
  CHECK(error_of({"onbuild RUN x"}) == "dockerfile instruction not supported with --change: ONBUILD");
  for (const char* other : {"ADD a b", "COPY a b", "FROM x", "ARG A", "SHELL [\"sh\"]", "HEALTHCHECK NONE", "MAINTAINER m"})
    CHECK(error_of({other}).find("not supported with --change") != std::string::npos);
  CHECK(error_of({"FOO bar"}).find("unknown instruction: FOO") != std::string::npos);
  CHECK(error_of({"   "}) == "empty --change");
  CHECK(error_of({"CMD"}) == "CMD requires at least one argument");
  // A config that is not an object is the image's fault.
  Json broken = Json::array();
  const Status status = changes::apply(broken, {"CMD x"});
  REQUIRE_FALSE(status.ok());
  CHECK(status.error().code == Errc::bad_image);
  Json bad_env = {{"Env", "PATH=/bin"}};
  CHECK_FALSE(changes::apply(bad_env, {"ENV A=1"}).ok());
}

TEST_CASE("image changes: validate checks without a config, a continued line is one") {
  CHECK(changes::validate({"CMD [\"a\"]", "ENV A=1", "EXPOSE 80"}).ok());
  CHECK_FALSE(changes::validate({"CMD [\"a\"]", "RUN x"}).ok());
  CHECK(changes::validate({}).ok());
  CHECK(applied({"ENV A=1 \\\n B=2"})["Env"] == Json::array({"A=1", "B=2"}));
}
