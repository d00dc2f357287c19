// A small blocking HTTP/1.1 client over Boost.Beast for the socket tests.
// Reads give up after 5 s, so a server bug fails a test instead of hanging
// it.
#ifndef CFREC_TESTS_SERVER_HTTP_CLIENT_H_
#define CFREC_TESTS_SERVER_HTTP_CLIENT_H_

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <string>

namespace cfrec::server {

class Client {
 public:
  using Response =
      boost::beast::http::response<boost::beast::http::string_body>;

  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    timeval tv{5, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv,
               sizeof(tv));
  }
  void Send(const std::string& raw) {
    boost::asio::write(socket_, boost::asio::buffer(raw));
  }
  // Reads one response; `ec` is set on EOF, reset or timeout.
  Response Read(boost::system::error_code& ec) {
    Response res;
    boost::beast::http::read(socket_, buffer_, res, ec);
    return res;
  }
  Response Read() {
    boost::system::error_code ec;
    Response res = Read(ec);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }
  // True when the server closed the connection (orderly EOF or reset)
  // without sending anything more.
  bool ReadsEof() {
    char c;
    boost::system::error_code ec;
    const size_t n = socket_.read_some(boost::asio::buffer(&c, 1), ec);
    return n == 0 && (ec == boost::asio::error::eof ||
                      ec == boost::asio::error::connection_reset);
  }
  boost::asio::ip::tcp::socket& socket() { return socket_; }
  static std::string Get(const std::string& target, bool close = false) {
    return "GET " + target + " HTTP/1.1\r\nHost: t\r\n" +
           (close ? "Connection: close\r\n" : "") + "\r\n";
  }
  // `headers`: more header lines, each ending in "\r\n".
  static std::string PostJson(const std::string& target,
                              const std::string& body,
                              const std::string& headers = "") {
    return "POST " + target +
           " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" +
           headers + "Content-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

}  // namespace cfrec::server

#endif  // CFREC_TESTS_SERVER_HTTP_CLIENT_H_
