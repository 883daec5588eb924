# Backend script of prunescope's 'lme4' GLMM backend (stats/glmm/backends/lme4_r.py).
#   Rscript fit_glmer.R DATA.csv "FORMULA" NAGQ TOLPWRSS OUT.json FACTOR_COLUMNS(comma-separated)
# Fits lme4::glmer(FORMULA, family = binomial, nAGQ, control = glmerControl(tolPwrss)) and writes
# the fit (fixef, both SE flavours, theta, VarCorr, logLik, convergence) as JSON; on failure writes
# {"error": message} and exits with status 1.
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))))
source(file.path(here, "json_out.R"))
a <- commandArgs(trailingOnly = TRUE)
out <- a[[5]]
r_warnings <- character(0)
res <- tryCatch(withCallingHandlers({
  suppressPackageStartupMessages(library(lme4))
  d <- read.csv(a[[1]])
  for (g in strsplit(a[[6]], ",")[[1]]) d[[g]] <- factor(d[[g]])
  fit <- glmer(as.formula(a[[2]]), data = d, family = binomial, nAGQ = as.integer(a[[3]]),
               control = glmerControl(tolPwrss = as.numeric(a[[4]])))
  c(glmer_summary(fit), list(r_warnings = as_array(r_warnings)))
}, warning = function(w) {
  r_warnings <<- c(r_warnings, conditionMessage(w))
  invokeRestart("muffleWarning")
}), error = function(e) list(error = conditionMessage(e)))
writeLines(json_value(res), out)
if (!is.null(res$error)) quit(status = 1)
