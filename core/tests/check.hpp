// A minimal test harness: CHECK records a failure and goes on, main() reports and sets
// the exit code (ctest reads it). No dependency, so the tests build anywhere the core does.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace check {

inline int &failures() {
    static int n = 0;
    return n;
}

inline std::vector<std::pair<std::string, std::function<void()>>> &registry() {
    static std::vector<std::pair<std::string, std::function<void()>>> r;
    return r;
}

struct Register {
    Register(const char *name, std::function<void()> fn) { registry().emplace_back(name, std::move(fn)); }
};

inline void fail(const char *file, int line, const std::string &what) {
    ++failures();
    std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
}

inline int run_all() {
    for (auto &[name, fn] : registry()) {
        const int before = failures();
        try {
            fn();
        } catch (const std::exception &e) {
            fail(name.c_str(), 0, std::string("unexpected exception: ") + e.what());
        }
        std::fprintf(stderr, "%s %s\n", failures() == before ? "ok  " : "FAIL", name.c_str());
    }
    return failures() == 0 ? 0 : 1;
}

}  // namespace check

#define TEST(name)                                               \
    static void                  name();                         \
    static const check::Register name##_registered(#name, name); \
    static void                  name()

#define CHECK(cond)                                          \
    do {                                                     \
        if (!(cond)) check::fail(__FILE__, __LINE__, #cond); \
    } while (0)

#define CHECK_EQ(a, b)                                                                                      \
    do {                                                                                                    \
        const auto &va_ = (a);                                                                              \
        const auto &vb_ = (b);                                                                              \
        if (!(va_ == vb_)) {                                                                                \
            check::fail(                                                                                    \
                __FILE__, __LINE__,                                                                         \
                std::string(#a " == " #b " (") + std::to_string(va_) + " vs " + std::to_string(vb_) + ")"); \
        }                                                                                                   \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                               \
    do {                                                                                                    \
        const double va_ = (a), vb_ = (b);                                                                  \
        if (!(std::fabs(va_ - vb_) <= (tol))) {                                                             \
            check::fail(                                                                                    \
                __FILE__, __LINE__,                                                                         \
                std::string(#a " ~= " #b " (") + std::to_string(va_) + " vs " + std::to_string(vb_) + ")"); \
        }                                                                                                   \
    } while (0)

#define CHECK_THROWS(expr, Exception)                                                      \
    do {                                                                                   \
        bool thrown_ = false;                                                              \
        try {                                                                              \
            (void)(expr);                                                                  \
        } catch (const Exception &) {                                                      \
            thrown_ = true;                                                                \
        }                                                                                  \
        if (!thrown_) check::fail(__FILE__, __LINE__, #expr " did not throw " #Exception); \
    } while (0)

#define TEST_MAIN()              \
    int main() {                 \
        return check::run_all(); \
    }
