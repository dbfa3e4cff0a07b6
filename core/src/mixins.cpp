// The CRUD mixins: values that install DRF's actions into a consumer's action table.

#include <syncline/core/consumer.hpp>

namespace syncline {
namespace {

// The `data` argument of create/update/patch: missing or null answers "No data provided" (DCRF crashes there);
// anything but an object answers DRF's "Invalid data" message.
Result<const rapidjson::Value*> DataArgument(const ActionRequest& request) {
    const rapidjson::Value* data = request.Arg("data");
    if (!data || data->IsNull()) {
        return ActionResult::Error(400, FieldErrorsJson({{"non_field_errors", {"No data provided"}}}));
    }
    if (!data->IsObject()) {
        return ActionResult::Error(
            400, FieldErrorsJson({{"non_field_errors", {"Invalid data. Expected a dictionary, but got " +
                                                        std::string(PythonTypeName(*data)) + "."}}}));
    }
    return data;
}

ActionResult List(GenericConsumer& consumer, ActionRequest& request) {
    std::vector<Row> rows = consumer.store().List(consumer.options().model, consumer.GetQueryset(request));
    std::string data = "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i) data += ",";
        data += consumer.Represent(rows[i]);
    }
    data += "]";
    return ActionResult::Ok(200, std::move(data));
}

ActionResult Retrieve(GenericConsumer& consumer, ActionRequest& request) {
    Result<Row> row = consumer.GetObject(request);
    if (!row) return row.error();
    return ActionResult::Ok(200, consumer.Represent(*row));
}

ActionResult Create(GenericConsumer& consumer, ActionRequest& request) {
    Result<const rapidjson::Value*> data = DataArgument(request);
    if (!data) return data.error();
    Validated validated = consumer.serializer().Validate(**data, ValidationMode::kCreate);
    if (!validated.ok()) return ActionResult::Error(400, FieldErrorsJson(validated.errors));
    try {
        return ActionResult::Ok(201, consumer.Represent(consumer.PerformCreate(request, validated.values)));
    } catch (const StoreError& e) {
        return WriteErrorReply(consumer, e);
    }
}

ActionResult Save(GenericConsumer& consumer, ActionRequest& request, ValidationMode mode) {
    Result<Row> instance = consumer.GetObject(request);
    if (!instance) return instance.error();
    Result<const rapidjson::Value*> data = DataArgument(request);
    if (!data) return data.error();
    Validated validated = consumer.serializer().Validate(**data, mode);
    if (!validated.ok()) return ActionResult::Error(400, FieldErrorsJson(validated.errors));
    try {
        return ActionResult::Ok(200, consumer.Represent(consumer.PerformUpdate(request, *instance, validated.values)));
    } catch (const StoreError& e) {
        return WriteErrorReply(consumer, e);
    }
}

ActionResult Delete(GenericConsumer& consumer, ActionRequest& request) {
    Result<Row> instance = consumer.GetObject(request);
    if (!instance) return instance.error();
    consumer.PerformDestroy(request, *instance);
    return ActionResult::Ok(204);
}

}  // namespace

Mixin ListModelMixin() { return {{ActionSpec{"list", List, false, false, false, false}}}; }
Mixin RetrieveModelMixin() { return {{ActionSpec{"retrieve", Retrieve, true, false, false, false}}}; }
Mixin CreateModelMixin() { return {{ActionSpec{"create", Create, false, true, false, false}}}; }
Mixin UpdateModelMixin() {
    return {{ActionSpec{"update", [](GenericConsumer& c, ActionRequest& r) { return Save(c, r, ValidationMode::kUpdate); },
                        true, true, false, false}}};
}
Mixin PatchModelMixin() {
    return {{ActionSpec{"patch", [](GenericConsumer& c, ActionRequest& r) { return Save(c, r, ValidationMode::kPartial); },
                        true, true, false, false}}};
}
Mixin DeleteModelMixin() { return {{ActionSpec{"delete", Delete, true, true, false, false}}}; }

}  // namespace syncline
