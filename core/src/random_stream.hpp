// A seeded random stream whose outputs do not depend on the standard library's
// distribution implementations, so a seed means the same labels on every platform.
#pragma once

#include <cstdint>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

namespace icm {

class RandomStream {
  public:
    explicit RandomStream(uint64_t seed) : engine_(seed) {}

    uint64_t next_u64() { return engine_(); }
    // Uniform in [0, 1) with 53 random bits.
    double next_unit() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
    // Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method, widened).
    uint64_t next_below(uint64_t n) {
        const uint64_t threshold = (0 - n) % n;
        while (true) {
            const uint64_t x = engine_();
            if (x >= threshold) return x % n;
        }
    }

    std::string save() const {
        std::ostringstream out;
        out << engine_;
        return out.str();
    }
    void load(const std::string &text) {
        std::istringstream in(text);
        in >> engine_;
        if (!in) throw std::invalid_argument("rng_state: not a saved mt19937_64 state");
    }

  private:
    std::mt19937_64 engine_;
};

// SplitMix64: a stateless mix used to derive per-claim seeds from (seed, epoch, claim).
inline uint64_t mix_seed(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A SplitMix64 stream: nearly free to seed, for the many short per-claim draws (one
// context per claim) where seeding a Mersenne Twister would cost more than the draw.
class SplitMixStream {
  public:
    explicit SplitMixStream(uint64_t seed) : state_(seed) {}
    uint64_t next_u64() {
        state_ += 0x9e3779b97f4a7c15ULL;
        uint64_t x = state_;
        x          = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x          = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
    }
    // Uniform integer in [0, n), n > 0, without modulo bias (same rule as RandomStream).
    uint64_t next_below(uint64_t n) {
        const uint64_t threshold = (0 - n) % n;
        while (true) {
            const uint64_t x = next_u64();
            if (x >= threshold) return x % n;
        }
    }

  private:
    uint64_t state_;
};

}  // namespace icm
