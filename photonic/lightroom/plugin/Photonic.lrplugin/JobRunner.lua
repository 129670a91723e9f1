--[[ Runs the jobs the bridge assigns, one at a time: find the photo in the catalog (or add it),
apply the develop preset and/or settings, export it with LrExportSession into the job's
export_dir, report progress per rendition, and finish with job_completed (the rendered paths)
or job_failed (Lightroom's message). A job_cancelled stops the job between steps and nothing
more is sent for it. ]]

local LrApplication = import "LrApplication"
local LrExportSession = import "LrExportSession"
local LrFileUtils = import "LrFileUtils"
local LrTasks = import "LrTasks"
local Json = require "Json"
local Log = require "Log"

local JobRunner = {}

-- Counts for the status menu (and the test harness).
JobRunner.stats = { completed = 0, failed = 0, cancelled = 0, finished = 0 }

local queue = {}
local current = nil
local stopping = false

local CANCELLED = {}

local function key(jobId, attempt)
    return tostring(jobId) .. "#" .. tostring(attempt)
end

-- Export -----------------------------------------------------------------------------------

local FORMATS = { JPEG = "JPEG", TIFF = "TIFF", PNG = "PNG", DNG = "DNG", ORIGINAL = "ORIGINAL" }
local COLOR_SPACES = { sRGB = "sRGB", AdobeRGB = "AdobeRGB", ProPhotoRGB = "ProPhotoRGB" }
-- Lightroom has no "no metadata" choice: copyright only, and location removed, comes closest.
local METADATA = { all = "all", copyright = "copyrightOnly", none = "copyrightOnly" }

--- Lightroom's export settings for the protocol's `export` object and the job's export_dir.
function JobRunner.exportSettings(export, exportDir)
    export = export or {}
    local format = FORMATS[export.format or "JPEG"]
    if not format then error("unsupported export format " .. tostring(export.format), 0) end
    local s = {
        LR_export_destinationType = "specificFolder",
        LR_export_destinationPathPrefix = exportDir,
        LR_export_useSubfolder = false,
        LR_collisionHandling = "overwrite", -- a job run again replaces its own earlier output
        LR_renamingTokensOn = false,
        LR_format = format,
        LR_export_colorSpace = COLOR_SPACES[export.color_space or "sRGB"] or "sRGB",
        LR_minimizeEmbeddedMetadata = false,
        LR_embeddedMetadataOption = METADATA[export.metadata or "all"] or "all",
        LR_removeLocationMetadata = export.metadata == "none",
    }
    if format == "JPEG" then
        local quality = tonumber(export.quality) or 90
        s.LR_jpeg_quality = math.max(0, math.min(100, quality)) / 100
        s.LR_jpeg_useLimitSize = false
    end
    local longEdge = tonumber(export.long_edge) or 0
    s.LR_size_doConstrain = longEdge > 0
    if longEdge > 0 then
        s.LR_size_resizeType = "longEdge"
        s.LR_size_maxWidth = longEdge
        s.LR_size_maxHeight = longEdge
        s.LR_size_units = "pixels"
        s.LR_size_doNotEnlarge = true
    end
    local sharpening = export.sharpening or "none"
    s.LR_outputSharpeningOn = sharpening ~= "none"
    if sharpening ~= "none" then
        s.LR_outputSharpeningMedia = sharpening
        s.LR_outputSharpeningLevel = 2
    end
    return s
end

-- Steps ------------------------------------------------------------------------------------

local function checkCancelled(job)
    if job.cancelled then error(CANCELLED, 0) end
end

local function progress(job, send, fraction, message)
    checkCancelled(job)
    local ok, err = send({ type = "job_progress", job_id = job.job_id, attempt = job.attempt,
        fraction = fraction, message = message })
    if not ok and err and err.status == 409 then job.cancelled = true end
    checkCancelled(job)
end

local function findOrAddPhoto(catalog, path)
    if not LrFileUtils.exists(path) then
        error("The file " .. path .. " does not exist or cannot be read.", 0)
    end
    local photo = catalog:findPhotoByPath(path)
    if photo then return photo end
    catalog:withWriteAccessDo("Photonic: add photo", function()
        photo = catalog:addPhoto(path)
    end, { timeout = 60 })
    if not photo then error("Lightroom could not add " .. path .. " to the catalog.", 0) end
    return photo
end

local function findPreset(nameOrUuid)
    local ok, preset = LrTasks.pcall(LrApplication.developPresetByUuid, nameOrUuid)
    if ok and preset then return preset end
    for _, folder in ipairs(LrApplication.developPresetFolders()) do
        for _, candidate in ipairs(folder:getDevelopPresets()) do
            if candidate:getName() == nameOrUuid then return candidate end
        end
    end
    error("Could not find the develop preset \"" .. tostring(nameOrUuid)
        .. "\" (by UUID or name) in Lightroom's develop presets.", 0)
end

-- The settings table without JSON nulls (Lightroom wants absent keys, not a null value).
local function plainSettings(settings)
    local out = {}
    for k, v in pairs(settings) do
        if v ~= Json.null then out[k] = v end
    end
    return out
end

local function develop(catalog, photo, spec)
    if type(spec) ~= "table" then return end
    local preset = spec.preset and spec.preset ~= Json.null and findPreset(spec.preset)
    local settings = type(spec.settings) == "table" and plainSettings(spec.settings)
    if not preset and not settings then return end
    catalog:withWriteAccessDo("Photonic: develop", function()
        if preset then photo:applyDevelopPreset(preset, _PLUGIN) end
        if settings then photo:applyDevelopSettings(settings, "Photonic") end
    end, { timeout = 60 })
end

local function export(job, send, photo)
    local session = LrExportSession({
        photosToExport = { photo },
        exportSettings = JobRunner.exportSettings(job.export, job.export_dir),
    })
    local total = session:countRenditions()
    local outputs = Json.array({})
    local done = 0
    for _, rendition in session:renditions({ stopIfCanceled = true }) do
        checkCancelled(job)
        local ok, pathOrMessage = rendition:waitForRender()
        checkCancelled(job)
        if not ok then error(tostring(pathOrMessage), 0) end
        outputs[#outputs + 1] = pathOrMessage
        done = done + 1
        progress(job, send, 0.3 + 0.7 * done / math.max(total, 1),
            string.format("rendered %d of %d", done, total))
    end
    return outputs
end

local function perform(job, send)
    local catalog = LrApplication.activeCatalog()
    progress(job, send, 0.0, "adding the photo to the catalog")
    local photo = findOrAddPhoto(catalog, job.input_path)
    progress(job, send, 0.1, "applying the develop settings")
    develop(catalog, photo, job.develop)
    progress(job, send, 0.3, "exporting")
    return export(job, send, photo)
end

-- One job, reported. A final message that cannot be sent is retried a few times; after that
-- the bridge hands the job back when this client goes quiet.
local function finish(job, send, message)
    for attempt = 1, 5 do
        if job.cancelled then return end
        local ok, err = send(message)
        if ok then return end
        Log.warn("job_report_failed", { job_id = job.job_id, type = message.type,
            error = err and err.message })
        if err and err.status and err.status < 500 then return end
        LrTasks.sleep(attempt)
    end
end

local function runOne(job, send)
    Log.info("job_started", { job_id = job.job_id, attempt = job.attempt, input = job.input_path })
    local ok, result = LrTasks.pcall(perform, job, send)
    local stats = JobRunner.stats
    if job.cancelled or result == CANCELLED then
        stats.cancelled = stats.cancelled + 1
        Log.info("job_cancelled", { job_id = job.job_id, attempt = job.attempt })
    elseif ok then
        finish(job, send, { type = "job_completed", job_id = job.job_id, attempt = job.attempt,
            outputs = result })
        stats.completed = stats.completed + 1
        Log.info("job_completed", { job_id = job.job_id, outputs = #result })
    else
        local message = tostring(result)
        finish(job, send, { type = "job_failed", job_id = job.job_id, attempt = job.attempt,
            error = message })
        stats.failed = stats.failed + 1
        Log.warn("job_failed", { job_id = job.job_id, error = message })
    end
    stats.finished = stats.finished + 1
end

-- The bridge's messages ----------------------------------------------------------------------

--- job_assigned: queued behind the running job; a job already held is not taken twice.
function JobRunner.assign(message)
    local k = key(message.job_id, message.attempt)
    if current and current.key == k then return end
    for _, job in ipairs(queue) do
        if job.key == k then return end
    end
    message.key = k
    message.cancelled = false
    queue[#queue + 1] = message
    Log.info("job_assigned", { job_id = message.job_id, attempt = message.attempt })
end

--- job_cancelled: a queued job is dropped, the running one stops at its next step.
function JobRunner.cancel(message)
    local k = key(message.job_id, message.attempt)
    if current and current.key == k then current.cancelled = true end
    for i = #queue, 1, -1 do
        if queue[i].key == k then
            table.remove(queue, i)
            JobRunner.stats.cancelled = JobRunner.stats.cancelled + 1
            JobRunner.stats.finished = JobRunner.stats.finished + 1
        end
    end
end

--- The job loop (an async task): takes queued jobs until `stop`; `send` is BridgeClient.send.
function JobRunner.work(send)
    stopping = false
    while not stopping do
        current = table.remove(queue, 1)
        if current then
            runOne(current, send)
            current = nil
        else
            LrTasks.sleep(0.1)
        end
    end
end

function JobRunner.stop()
    stopping = true
    if current then current.cancelled = true end
end

function JobRunner.describe()
    local s = JobRunner.stats
    local running = current and ("running job " .. tostring(current.job_id)) or "idle"
    return string.format("Jobs: %s, %d queued; %d completed, %d failed, %d cancelled", running,
        #queue, s.completed, s.failed, s.cancelled)
end

return JobRunner
