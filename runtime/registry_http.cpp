#include "runtime/registry_http.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <mutex>
#include <optional>

namespace hyper::runtime::http {
namespace {

// A transfer that moves nothing for this long is dead; slow links still get through.
constexpr long kStallSeconds = 60;
constexpr long kConnectSeconds = 30;

struct Transfer {
  const Request* request = nullptr;
  CURL* curl = nullptr;
  Response response;
  std::optional<Error> sink_error;
  bool body_too_large = false;
  uint64_t uploaded = 0;
};

bool is_success(CURL* curl) {
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  return status >= 200 && status < 300;
}

size_t on_body(char* data, size_t, size_t size, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  if (transfer.request->sink != nullptr && is_success(transfer.curl)) {
    if (transfer.response.sink_bytes == 0 && transfer.request->on_success_status) {
      long status = 0;
      curl_easy_getinfo(transfer.curl, CURLINFO_RESPONSE_CODE, &status);
      if (Status told = transfer.request->on_success_status(status); !told.ok()) {
        transfer.sink_error = told.error();
        return 0;
      }
    }
    if (Status status = (*transfer.request->sink)(data, size); !status.ok()) {
      transfer.sink_error = status.error();
      return 0;
    }
    transfer.response.sink_bytes += size;
    return size;
  }
  if (transfer.response.body.size() + size > kMaxMemoryBody) {
    transfer.body_too_large = true;
    return 0;
  }
  transfer.response.body.append(data, size);
  return size;
}

size_t on_header(char* data, size_t, size_t size, void* user) {
  auto& headers = static_cast<Transfer*>(user)->response.headers;
  std::string line(data, size);
  // A new status line starts another response (after a redirect or a 100 Continue).
  if (line.rfind("HTTP/", 0) == 0) {
    headers.clear();
    return size;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return size;
  std::string name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string value = line.substr(colon + 1);
  const auto is_space = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!value.empty() && is_space(value.back())) value.pop_back();
  value.erase(value.begin(), std::find_if_not(value.begin(), value.end(), is_space));
  auto& slot = headers[name];
  slot = slot.empty() ? value : slot + ", " + value;
  return size;
}

size_t on_upload(char* buffer, size_t, size_t size, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  const Request& request = *transfer.request;
  const uint64_t left = request.upload_size - transfer.uploaded;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(left, size));
  if (want == 0) return 0;
  const ssize_t got = ::pread(request.upload_fd, buffer, want, static_cast<off_t>(request.upload_offset + transfer.uploaded));
  if (got <= 0) return CURL_READFUNC_ABORT;
  transfer.uploaded += static_cast<uint64_t>(got);
  return static_cast<size_t>(got);
}

// Rewinds an upload when curl must send the body again (a redirect, an auth retry).
int on_seek(void* user, curl_off_t offset, int origin) {
  auto& transfer = *static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  transfer.uploaded = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

bool is_transient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

struct SList {
  curl_slist* list = nullptr;
  ~SList() { curl_slist_free_all(list); }
};

void set_method(CURL* curl, const Request& request, Transfer& transfer) {
  const bool has_file = request.upload_fd >= 0;
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "PATCH" || (request.method == "POST" && has_file)) {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    if (has_file) {
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_upload);
      curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
      curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, on_seek);
      curl_easy_setopt(curl, CURLOPT_SEEKDATA, &transfer);
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.upload_size));
    } else {
      // An in-memory body: read through the same callback from a view of it.
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, +[](char* buffer, size_t, size_t size, void* user) -> size_t {
        auto& t = *static_cast<Transfer*>(user);
        const std::string& body = t.request->body;
        const size_t n = std::min<size_t>(size, body.size() - t.uploaded);
        std::copy_n(body.data() + t.uploaded, n, buffer);
        t.uploaded += n;
        return n;
      });
      curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
      curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, on_seek);
      curl_easy_setopt(curl, CURLOPT_SEEKDATA, &transfer);
    }
    if (request.method != "PUT") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
}

}  // namespace

std::string Response::header(const std::string& lowercase_name) const {
  const auto it = headers.find(lowercase_name);
  return it == headers.end() ? std::string() : it->second;
}

Result<Client> Client::create() {
  static std::once_flag once;
  static CURLcode global = CURLE_OK;
  std::call_once(once, [] { global = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global != CURLE_OK) return make_error(Errc::io, std::string("libcurl: ") + curl_easy_strerror(global));
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return make_error(Errc::io, "libcurl: cannot create a handle");
  return Client(curl);
}

Result<Response> Client::perform(const Request& request, bool* transient) {
  if (transient != nullptr) *transient = false;
  CURL* curl = curl_.get();
  curl_easy_reset(curl);
  Transfer transfer;
  transfer.request = &request;
  transfer.curl = curl;
  SList headers;
  for (const auto& header : request.headers) headers.list = curl_slist_append(headers.list, header.c_str());
  // No "Expect: 100-continue" round trip before each upload.
  headers.list = curl_slist_append(headers.list, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.list);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "hyper/0.1");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, kConnectSeconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "identity");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  if (!request.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, request.ca_file.c_str());
  if (request.follow_redirects) {
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  }
  set_method(curl, request, transfer);

  char message[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, message);
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &transfer.response.status);
  if (transfer.sink_error) return *transfer.sink_error;
  if (transfer.body_too_large)
    return make_error(Errc::io, request.method + " " + request.url + ": the response is larger than " +
                                    std::to_string(kMaxMemoryBody >> 20) + " MiB");
  if (code != CURLE_OK) {
    if (transient != nullptr) *transient = is_transient(code);
    return make_error(Errc::io, request.method + " " + request.url + ": " +
                                    (message[0] != '\0' ? std::string(message) : curl_easy_strerror(code)));
  }
  return std::move(transfer.response);
}

std::string url_escape(const std::string& text) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace hyper::runtime::http
