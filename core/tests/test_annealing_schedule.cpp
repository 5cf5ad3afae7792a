#include <cmath>

#include "check.hpp"
#include "icm/icm.hpp"

TEST(exp_schedule) {
    icm::SearchParams p;
    p.schedule = icm::Schedule::EXP;
    CHECK_NEAR(icm::annealing_temperature(p, 0), 10.0, 1e-12);
    CHECK_NEAR(icm::annealing_temperature(p, 1), 9.9, 1e-12);
    CHECK_NEAR(icm::annealing_temperature(p, 100), 10.0 * std::pow(0.99, 100), 1e-12);
    CHECK_NEAR(icm::annealing_temperature(p, 100000), 0.01, 1e-15);  // floored at final_T
}

TEST(log_schedule) {
    icm::SearchParams p;
    p.schedule = icm::Schedule::LOG;
    CHECK_NEAR(icm::annealing_temperature(p, 0), 10.0, 1e-12);
    CHECK_NEAR(icm::annealing_temperature(p, 9), 10.0 / (1 + 0.99 * std::log(10.0)), 1e-12);
    const auto code = icm::search_params_code();  // fixed 2 instead of beta
    CHECK_NEAR(icm::annealing_temperature(code, 9), 10.0 / (1 + 2 * std::log(10.0)), 1e-12);
    p.final_t = 5.0;
    CHECK_NEAR(icm::annealing_temperature(p, 1000), 5.0, 1e-12);
}

TEST(acceptance) {
    CHECK_NEAR(icm::acceptance_probability(0.5, 1.0), 1.0, 0);
    CHECK_NEAR(icm::acceptance_probability(0.0, 1.0), 1.0, 0);
    CHECK_NEAR(icm::acceptance_probability(-1.0, 2.0), std::exp(-0.5), 1e-15);
    CHECK_NEAR(icm::acceptance_probability(-30.0, 0.01), 0.0, 1e-300);
    CHECK_THROWS(icm::acceptance_probability(-1.0, 0.0), std::invalid_argument);
}

TEST(presets_differ_exactly_where_documented) {
    const auto paper = icm::search_params_paper();
    const auto code  = icm::search_params_code();
    CHECK(paper.schedule_counter == icm::ScheduleCounter::ITERATION);
    CHECK(code.schedule_counter == icm::ScheduleCounter::ACCEPTED);
    CHECK(paper.fix_options == icm::FixOptions::CONSISTENT && code.fix_options == icm::FixOptions::CODE);
    CHECK(paper.fix_pair_search == icm::FixPairSearch::SAMPLE &&
          code.fix_pair_search == icm::FixPairSearch::SCAN);
    CHECK(paper.fix_baseline == icm::FixBaseline::CURRENT && code.fix_baseline == icm::FixBaseline::DUMMY);
    CHECK_NEAR(code.log_beta, 2.0, 0);
    CHECK_NEAR(paper.alpha, code.alpha, 0);
    CHECK_EQ(paper.max_iterations, 3000);
    CHECK_EQ(paper.num_seed, 8);
}

TEST(validate_names_the_field) {
    auto message = [](auto mutate) {
        icm::SearchParams p;
        mutate(p);
        try {
            p.validate();
        } catch (const std::invalid_argument &e) {
            return std::string(e.what());
        }
        return std::string();
    };
    CHECK(message([](auto &p) { p.alpha = -1; }).rfind("alpha:", 0) == 0);
    CHECK(message([](auto &p) { p.max_iterations = -5; }).rfind("K:", 0) == 0);
    CHECK(message([](auto &p) { p.consistency_fix_k = -1; }).rfind("consistency_fix_K:", 0) == 0);
    CHECK(message([](auto &p) { p.initial_t = 0.001; }).rfind("initial_T:", 0) == 0);
    CHECK(message([](auto &p) { p.final_t = 0; }).rfind("final_T:", 0) == 0);
    CHECK(message([](auto &p) { p.decay = 1.5; }).rfind("decay:", 0) == 0);
    CHECK(message([](auto &p) { p.num_seed = -2; }).rfind("num_seed:", 0) == 0);
    CHECK(message([](auto &p) { p.context_k = 0; }).rfind("context_k:", 0) == 0);
    CHECK(message([](auto &) {}).empty());
}

TEST_MAIN()
