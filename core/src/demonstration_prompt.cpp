// The many-shot prompt: labeled demonstrations, then the claim to judge.
#include <stdexcept>
#include <string>

#include "icm/icm.hpp"

namespace icm {

std::string render_prompt(const ClaimSet &set, const ScoreRequest &request) {
    if (request.demos.size() != request.demo_labels.size()) {
        throw std::invalid_argument("demo_labels: size " + std::to_string(request.demo_labels.size()) +
                                    " != demos size " + std::to_string(request.demos.size()));
    }
    size_t size = set.claim(request.target).prompt.size();
    for (int32_t d : request.demos) size += set.claim(d).prompt.size() + 16;
    std::string prompt;
    prompt.reserve(size);
    for (size_t i = 0; i < request.demos.size(); ++i) {
        prompt += set.claim(request.demos[i]).prompt;
        prompt += set.label_word(request.demo_labels[i]);
        prompt += set.demo_separator();
    }
    prompt += set.claim(request.target).prompt;
    return prompt;
}

}  // namespace icm
