# Minimal JSON writer (no package needed): numbers at full precision, NA/NaN/Inf as null.
json_value <- function(x) {
  if (is.null(x)) return("null")
  if (is.list(x)) {
    if (!is.null(names(x)) && all(names(x) != "")) {
      keys <- vapply(names(x), json_string, "")
      vals <- vapply(x, json_value, "")
      return(paste0("{", paste0(keys, ": ", vals, collapse = ", "), "}"))
    }
    return(paste0("[", paste(vapply(x, json_value, ""), collapse = ", "), "]"))
  }
  one <- function(v) {
    if (is.na(v) || (is.numeric(v) && !is.finite(v))) return("null")
    if (is.logical(v)) return(if (v) "true" else "false")
    if (is.numeric(v)) return(trimws(formatC(v, digits = 17, format = "g")))
    json_string(as.character(v))
  }
  vals <- vapply(as.list(x), one, "")
  if (length(x) == 1 && is.null(attr(x, "as_array"))) return(vals)
  paste0("[", paste(vals, collapse = ", "), "]")
}
json_string <- function(s) {
  s <- gsub("\\\\", "\\\\\\\\", s)
  s <- gsub("\"", "\\\\\"", s)
  s <- gsub("\n", "\\\\n", s)
  s <- gsub("\t", "\\\\t", s)
  paste0("\"", s, "\"")
}
as_array <- function(x) { attr(x, "as_array") <- TRUE; x }

# Everything a golden or a backend result needs from a fitted glmer model.
glmer_summary <- function(fit) {
  vc <- lme4::VarCorr(fit)
  groups <- lapply(names(vc), function(g) {
    m <- vc[[g]]
    list(group = g, terms = as_array(colnames(m)), sd = as_array(unname(sqrt(diag(m)))),
         corr = as_array(if (ncol(m) > 1) unname(attr(m, "correlation")[lower.tri(m)]) else numeric(0)))
  })
  theta <- lme4::getME(fit, "theta")
  tnames <- names(theta)
  conv <- fit@optinfo$conv$lme4$messages
  se_h <- tryCatch(unname(sqrt(diag(as.matrix(vcov(fit, use.hessian = TRUE))))), error = function(e) rep(NA, length(lme4::fixef(fit))))
  se_rx <- unname(sqrt(diag(as.matrix(suppressWarnings(vcov(fit, use.hessian = FALSE))))))
  list(
    fixef_names = as_array(names(lme4::fixef(fit))),
    fixef = as_array(unname(lme4::fixef(fit))),
    se_hessian = as_array(se_h),
    se_rx = as_array(se_rx),
    theta = as_array(unname(theta)),
    theta_names = as_array(tnames),
    groups = groups,
    ngrps = as.list(lme4::ngrps(fit)),
    loglik = as.numeric(logLik(fit)),
    aic = AIC(fit),
    nobs = nobs(fit),
    nAGQ = fit@devcomp$dims[["nAGQ"]],
    optimizer = as_array(fit@optinfo$optimizer),
    convergence_messages = as_array(if (is.null(conv)) character(0) else conv),
    optimizer_code = fit@optinfo$conv$opt,
    singular = lme4::isSingular(fit),
    lme4_version = as.character(packageVersion("lme4")),
    r_version = R.version.string
  )
}
