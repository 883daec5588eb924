# Regenerate the lme4 goldens in tests/stats/goldens/ (run from the repository root):
#   Rscript stats/r/make_goldens.R [OUTDIR]
# Written for Debian bookworm r-base-core 4.2.2 + r-cran-lme4 1.1-31. Every model is fitted by
# lme4::glmer(family = binomial), Laplace (nAGQ = 1) unless noted, optimizer
# c("bobyqa", "Nelder_Mead") (glmerControl default: bobyqa for the nAGQ=0 stage, Nelder-Mead for
# the final stage), twice: with glmerControl() defaults and with tolPwrss = 1e-10 (the inner PIRLS
# tolerance; lme4's default 1e-7 can stop the inner solve early enough to cost ~0.01 logLik on
# crossed designs and shift the optimum). The golden is the fit with the higher log-likelihood ("the
# better likelihood wins"); the default fit is kept under "lme4_default". SEs are stored both ways:
# vcov(use.hessian = TRUE), lme4's default finite-difference Hessian, and use.hessian = FALSE
# (RX-based, what mixedlm reports).
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args) >= 1) args[[1]] else "tests/stats/goldens"
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))))
source(file.path(here, "json_out.R"))
dir.create(out, showWarnings = FALSE, recursive = TRUE)

fit_both <- function(formula, data, nAGQ = 1) {
  default <- glmer(formula, data = data, family = binomial, nAGQ = nAGQ)
  tight <- glmer(formula, data = data, family = binomial, nAGQ = nAGQ, control = glmerControl(tolPwrss = 1e-10))
  list(default = default, tight = tight)
}
golden <- function(name, fits, formula_python, data_file, extra = list()) {
  best_is_tight <- as.numeric(logLik(fits$tight)) > as.numeric(logLik(fits$default))
  fit <- if (best_is_tight) fits$tight else fits$default
  d <- suppressWarnings(glmer_summary(fits$default))
  g <- c(list(name = name, formula_r = paste(trimws(deparse(formula(fit))), collapse = " "),
              formula_python = formula_python, data = data_file,
              control = if (best_is_tight) "glmerControl(tolPwrss = 1e-10)" else "glmerControl() defaults"),
         suppressWarnings(glmer_summary(fit)),
         list(lme4_default = d[c("fixef", "se_hessian", "se_rx", "theta", "loglik", "convergence_messages")]),
         extra)
  writeLines(json_value(g), file.path(out, paste0(name, ".json")))
  cat(name, ": logLik default", format(d$loglik, digits = 10),
      "tolPwrss=1e-10", format(as.numeric(logLik(fits$tight)), digits = 10), "\n")
}
write_gz <- function(df, file) {
  con <- gzfile(file.path(out, file), "w")
  write.csv(df, con, row.names = FALSE)
  close(con)
}

## 1. cbpp (lme4's data set), binomial counts
data(cbpp, package = "lme4")
write.csv(cbpp, file.path(out, "cbpp.csv"), row.names = FALSE)
fit <- fit_both(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp)
golden("cbpp", fit, "cbind(incidence, size - incidence) ~ C(period) + (1|herd)", "cbpp.csv")
fit0 <- fit_both(cbind(incidence, size - incidence) ~ 1 + (1 | herd), cbpp)
lrt <- anova(fit0$tight, fit$tight)
golden("cbpp_null", fit0, "cbind(incidence, size - incidence) ~ 1 + (1|herd)", "cbpp.csv",
       list(lrt_vs_cbpp = list(chisq = lrt$Chisq[2], df = lrt$Df[2], p = lrt[["Pr(>Chisq)"]][2])))

## 2. VerbAgg: crossed random intercepts (316 ids x 24 items), 7584 binary rows
data(VerbAgg, package = "lme4")
va <- data.frame(r2 = as.integer(VerbAgg$r2 == "Y"), Anger = VerbAgg$Anger, Gender = VerbAgg$Gender,
                 btype = VerbAgg$btype, situ = VerbAgg$situ, id = VerbAgg$id, item = VerbAgg$item)
write_gz(va, "verbagg.csv.gz")
fit <- fit_both(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), va)
golden("verbagg", fit, "r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)", "verbagg.csv.gz")

## 3. Matched pairs (lme4 tests/testthat/test-glmer.R, issue #47): b = 18, c = 8
ai <- rep(0:1, each = 50)
ci <- c(rep(0, 42), rep(1, 8), rep(0, 18), rep(1, 32))
mp <- data.frame(event = c(rbind(ai, ci)), group = rep(c(1, 0), times = 100), id = rep(1:100, each = 2))
write.csv(mp, file.path(out, "matched_pairs.csv"), row.names = FALSE)
fit1 <- fit_both(event ~ group + (1 | id), mp)
golden("matched_pairs", fit1, "event ~ group + (1|id)", "matched_pairs.csv")
fit21 <- fit_both(event ~ group + (1 | id), mp, nAGQ = 21)
golden("matched_pairs_agq21", fit21, "event ~ group + (1|id)", "matched_pairs.csv",
       list(note = "nAGQ = 21: compare fixef/theta only; lme4's AGQ logLik is on another scale (lme4 #161)"))

## 4. Simulated study A: items x languages x conditions, (1|item) + (1|item:language)
set.seed(20261128)
n_item <- 150; langs <- c("de", "en", "fr", "sw"); conds <- c("dense", "sgpt70", "wanda50", "wanda70")
a <- expand.grid(condition = conds, language = langs, item = sprintf("q%03d", 1:n_item), stringsAsFactors = FALSE)
u_item <- setNames(rnorm(n_item, 0, 1.0), sprintf("q%03d", 1:n_item))
il <- unique(paste(a$item, a$language)); u_il <- setNames(rnorm(length(il), 0, 0.5), il)
eta <- -1.5 + c(dense = 0, sgpt70 = 0.8, wanda50 = 0.4, wanda70 = 1.2)[a$condition] +
  c(de = 0, en = 0.3, fr = -0.2, sw = 0.6)[a$language] + u_item[a$item] + u_il[paste(a$item, a$language)]
a$recognition_only <- rbinom(nrow(a), 1, plogis(eta))
a <- a[, c("item", "language", "condition", "recognition_only")]
write_gz(a, "sim_item_language.csv.gz")
fit <- fit_both(recognition_only ~ condition + language + (1 | item) + (1 | item:language), a)
golden("sim_item_language", fit, "recognition_only ~ condition + language + (1|item) + (1|item:language)",
       "sim_item_language.csv.gz", list(seed = 20261128))

## 5. Simulated study B: sparsity x method with an item-level covariate, a correlated random
##    slope of sparsity by item, crossed with language (6 levels)
set.seed(20261129)
n_item <- 80; langs <- c("ar", "de", "en", "fr", "sw", "zh")
b <- expand.grid(sparsity_c = c(-1, 0, 1), method = c("magnitude", "wanda"), language = langs,
                 item = sprintf("q%03d", 1:n_item), stringsAsFactors = FALSE)
difficulty <- setNames(rnorm(n_item), sprintf("q%03d", 1:n_item))
u0 <- rnorm(n_item, 0, 0.9); u1 <- 0.4 * u0 / 0.9 * 0.3 + rnorm(n_item, 0, 0.4)
names(u0) <- names(u1) <- sprintf("q%03d", 1:n_item)
v_lang <- setNames(rnorm(length(langs), 0, 0.4), langs)
b$difficulty <- round(difficulty[b$item], 4)
eta <- -1.2 + 0.5 * b$sparsity_c + 0.3 * (b$method == "wanda") + 0.25 * b$sparsity_c * (b$method == "wanda") +
  0.35 * b$difficulty + u0[b$item] + u1[b$item] * b$sparsity_c + v_lang[b$language]
b$recognition_only <- rbinom(nrow(b), 1, plogis(eta))
b <- b[, c("item", "language", "method", "sparsity_c", "difficulty", "recognition_only")]
write_gz(b, "sim_slope_crossed.csv.gz")
fit <- fit_both(recognition_only ~ sparsity_c * method + difficulty + (1 + sparsity_c | item) + (1 | language), b)
golden("sim_slope_crossed", fit,
       "recognition_only ~ sparsity_c * method + difficulty + (1 + sparsity_c|item) + (1|language)",
       "sim_slope_crossed.csv.gz", list(seed = 20261129))

## 6. GEE oracle (geepack, Debian r-cran-geepack): cbpp expanded to Bernoulli rows, exchangeable,
##    clustered by herd, robust (sandwich) SEs -- for the 'gee' backend.
if (requireNamespace("geepack", quietly = TRUE)) {
  ex <- cbpp[rep(seq_len(nrow(cbpp)), cbpp$size), c("herd", "period")]
  ex$y <- unlist(lapply(seq_len(nrow(cbpp)), function(i) c(rep(1, cbpp$incidence[i]), rep(0, cbpp$size[i] - cbpp$incidence[i]))))
  ex <- ex[order(ex$herd), ]
  gf <- geepack::geeglm(y ~ period, id = herd, data = ex, family = binomial, corstr = "exchangeable")
  s <- summary(gf)$coefficients
  g <- list(name = "gee_cbpp", data = "cbpp.csv",
            formula_python = "cbind(incidence, size - incidence) ~ C(period) + (1|herd)",
            coef_names = as_array(rownames(s)), coef = as_array(unname(s[, "Estimate"])),
            se_robust = as_array(unname(s[, "Std.err"])), alpha = unname(gf$geese$alpha),
            geepack_version = as.character(packageVersion("geepack")), r_version = R.version.string)
  writeLines(json_value(g), file.path(out, "gee_cbpp.json"))
  cat("gee_cbpp written\n")
}
