// mcos-hello ENDPOINT USER PASSWORD: logs in, makes a container, stores a greeting, reads it back.
#include <iostream>
#include <sstream>

#include "client/sdk/client.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: mcos-hello ENDPOINT USER PASSWORD\n";
    return 2;
  }
  mcos::client::Client client(argv[1]);
  if (auto r = client.Login(argv[2], argv[3]); !r.ok()) {
    std::cerr << "login: " << r.status() << "\n";
    return 1;
  }
  if (auto r = client.CreateContainer("hello");
      !r.ok() && r.status().code() != absl::StatusCode::kAlreadyExists) {
    std::cerr << "create container: " << r.status() << "\n";
    return 1;
  }
  std::istringstream in("hello from the SDK");
  mcos::client::PutOptions options;
  options.content_type = "text/plain";
  auto put = client.PutObject("hello", "greeting.txt", in, options);  // create or replace
  if (!put.ok()) {
    std::cerr << "put: " << put.status() << "\n";
    return 1;
  }
  std::ostringstream out;
  auto got = client.DownloadObject("hello", "greeting.txt", out);
  if (!got.ok()) {
    std::cerr << "get: " << got.status() << "\n";
    return 1;
  }
  std::cout << out.str() << " (etag " << got->etag() << ")\n";
  return 0;
}
