# Goldens for stats/signed_rank.py: R's wilcox.test(y, x, paired = TRUE, conf.int = TRUE) on
# continuous data (exact branch), tied integer ranks (normal branch) and log-probabilities.
# Regenerate: Rscript tests/stats/goldens/signed_rank.R > tests/stats/goldens/signed_rank.json
set.seed(13)
cases <- list()
add <- function(name, x, y, level = 0.95) {
  r <- suppressWarnings(wilcox.test(y, x, paired = TRUE, conf.int = TRUE, conf.level = level))
  cases[[length(cases) + 1]] <<- list(name = name, x = x, y = y, level = level,
    V = unname(r$statistic), p = r$p.value, estimate = unname(r$estimate),
    lower = r$conf.int[1], upper = r$conf.int[2], method = r$method)
}
add("continuous n=12", round(rnorm(12), 6), round(rnorm(12, 0.8), 6))
add("continuous n=30 level 0.9", round(rnorm(30), 6), round(rnorm(30, -0.3), 6), 0.9)
add("continuous n=7", round(rnorm(7), 6), round(rnorm(7, 1), 6))
for (k in 1:4) {
  n <- c(15, 40, 80, 200)[k]
  dense <- sample(c(1, 1, 1, 2, 3, 5, 12, 40), n, replace = TRUE)
  pruned <- dense + sample(c(0, 0, 1, 2, 3, 7, 20, -1), n, replace = TRUE)
  add(sprintf("tied ranks n=%d", n), dense, pruned)
}
add("log ranks n=60", log10(sample(1:50, 60, TRUE)), log10(sample(1:80, 60, TRUE)))
add("seq logprob n=70 (zeros)", c(round(-rexp(60, 0.5), 3), rep(-1, 10)), c(round(-rexp(60, 0.3), 3), rep(-1, 10)))
add("n=55 continuous (normal branch)", round(rnorm(55), 6), round(rnorm(55, 0.2), 6))
cat(jsonlite::toJSON(cases, auto_unbox = TRUE, digits = NA, pretty = TRUE))
